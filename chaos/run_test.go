package chaos

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPruneModelsKeepsLogsAndAudits(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"n1.log", "events.txt", "n1/jobs/job-1/audit.jsonl", "n1/jobs/job-1/metrics.jsonl", "c1/member-id"}
	drop := []string{"c1/blobs/ab12", "n1/jobs/job-1/checkpoint-20/state.safetensors", "n1/jobs/job-1/best/model.safetensors",
		"n1/jobs/job-1/final/config.json"}
	for _, f := range append(keep, drop...) {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pruneModels(dir)
	for _, f := range keep {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range drop {
		if _, err := os.Stat(filepath.Join(dir, filepath.Dir(f))); !os.IsNotExist(err) {
			t.Errorf("%s's folder is still there", f)
		}
	}
}

func TestCompareFailsOnMissingOrDistantMetrics(t *testing.T) {
	base := map[string]float64{"accuracy": 0.983, "loss": 0.0672}
	if err := compare(map[string]float64{"accuracy": 0.983 + 1e-7, "loss": 0.0672}, base, 1e-5); err != nil {
		t.Errorf("within tolerance: %v", err)
	}
	if err := compare(map[string]float64{"accuracy": 0.9121, "loss": 0.3828}, base, 1e-5); err == nil {
		t.Error("0.07 apart passed")
	}
	if err := compare(map[string]float64{"loss": 0.0672}, base, 1e-5); err == nil {
		t.Error("a missing metric passed")
	}
}
