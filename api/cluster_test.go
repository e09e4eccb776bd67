package api

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestClusterSpecPowerSGD: the PowerSGD options read from YAML under their documented
// names, default to rank 4 from step 100, and out-of-range values are refused naming
// the field.
func TestClusterSpecPowerSGD(t *testing.T) {
	var c ClusterSpec
	if err := yaml.Unmarshal([]byte("codec: powersgd\npowersgd_rank: 8\npowersgd_start_step: 250\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c = c.WithDefaults(); c.PowerSGDRank != 8 || c.PowerSGDStartStep != 250 || c.Validate() != nil {
		t.Fatalf("read rank %d from step %d (%v), want 8 from 250", c.PowerSGDRank, c.PowerSGDStartStep, c.Validate())
	}
	if d := (ClusterSpec{}).WithDefaults(); d.PowerSGDRank != 4 || d.PowerSGDStartStep != 100 {
		t.Fatalf("defaults: rank %d from step %d, want 4 from 100", d.PowerSGDRank, d.PowerSGDStartStep)
	}
	for _, bad := range []struct {
		edit  func(*ClusterSpec)
		field string
	}{
		{func(c *ClusterSpec) { c.PowerSGDRank = 65 }, "cluster.powersgd_rank"},
		{func(c *ClusterSpec) { c.PowerSGDRank = -1 }, "cluster.powersgd_rank"},
		{func(c *ClusterSpec) { c.PowerSGDStartStep = -5 }, "cluster.powersgd_start_step"},
	} {
		c := ClusterSpec{}.WithDefaults()
		bad.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("%+v: %v, want an error naming %s", c, err, bad.field)
		}
	}
}
