package coordinator

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/api"
	"gopkg.in/yaml.v3"
)

// FuzzParseJobSpec: parseJobSpec on any text returns a spec or a 400 whose Field is
// "spec" or a field of the job spec (cluster.nodes, say). A spec it accepts is what
// api.ParseSpec reads, has a known task, and round-trips: marshalled to YAML, it
// parses back to what marshals the same.
func FuzzParseJobSpec(f *testing.F) {
	for _, s := range []string{
		"", "train: [", "- a list", "task: translate\ntrain: x", "epochs: 1", "train: x\neval_split: 1.5",
		"train: x\nbatch_size: lots", "train: x\ncluster: 3", "train: x\ncluster: {nodes: 100}",
		"train: x\ncluster: {rejoin_window: soon}", "train: x\ndata: {format: xml}", "train: x\ndata: {header: maybe}",
		"train: a\ntrain: b\n", "c: &c {nodes: x}\ncluster: *c\ntrain: x\n", "train: x\n<<: {batch_size: lots}\n",
		"task: classify\ntrain: data/sms_spam/SMSSpamCollection\ndata: {format: labeltext, delimiter: \"\\t\"}\neval_split: 0.2\nmodel: tiny\nmax_length: 64\nbatch_size: 32\nepochs: 2\nlr: 1.0e-3\nmetric: f1_spam\neval_steps: 50\nsave_steps: 50\ncluster:\n  nodes: 2\n  min_nodes: 1\n  batch: constant\n",
		"model: toy\ntrain: sms.txt\nbatch_size: 64\nepochs: 2\nlr: 0.05\ncluster: {nodes: 3, ring_timeout: 3s, codec: powersgd, powersgd_rank: 8}\nreport_to: [tensorboard]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := parseJobSpec(text)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message == "" || (ae.Field != "spec" && !specField(ae.Field)) {
				t.Fatalf("error is not a 400 naming a field of the spec: %#v", err)
			}
			return
		}
		if !slices.Contains([]string{"classify", "multilabel", "ner", "qa"}, s.Task) {
			t.Fatalf("accepted task %q", s.Task)
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatalf("accepted spec does not marshal: %v", err)
		}
		if a, err := api.ParseSpec(text); err != nil || !yamlEqual(t, a, s) {
			t.Fatalf("api.ParseSpec reads otherwise (%v): %+v", err, a)
		}
		back, err := parseJobSpec(string(out))
		if err != nil || !yamlEqual(t, back, s) {
			t.Fatalf("round trip changed the spec (%v):\n%s", err, out)
		}
	})
}

// specField reports whether name, such as cluster.nodes, is a field of api.JobSpec.
func specField(name string) bool {
	v := reflect.ValueOf(&api.JobSpec{}).Elem()
	for part := range strings.SplitSeq(name, ".") {
		if v.Kind() != reflect.Struct {
			return false
		}
		f, ok := fieldByTag(v, part)
		if !ok {
			return false
		}
		v = f
	}
	return true
}

// yamlEqual compares specs by their YAML, in which NaN equals itself.
func yamlEqual(t *testing.T, a, b api.JobSpec) bool {
	ya, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	yb, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ya) == string(yb)
}

// TestParseJobSpecYAMLFeatures: a key given twice is a 400 naming it (yaml's own
// error named the field "yaml"); a bad value merged in with "<<" names its field; an
// alias to a mapping reads as that mapping, not as "want a mapping"; and a mapping
// that merges itself is an error, not an endless recursion; a value of the wrong type
// names its line once.
func TestParseJobSpecYAMLFeatures(t *testing.T) {
	for text, want := range map[string]string{
		"train: x\ntrain: y\n":                         `train: line 2: "train" is already defined at line 1`,
		"train: x\ncluster: {nodes: 2, nodes: 3}\n":    `cluster.nodes: line 2: "nodes" is already defined`,
		"train: x\nfoo: 1\nfoo: 2\n":                   `spec: line 3: "foo" is already defined at line 2`,
		"d: &d {batch_size: lots}\n<<: *d\ntrain: x\n": "batch_size: line 1: cannot unmarshal",
		"train: x\nbatch_size: lots\n":                 "batch_size: line 2: cannot unmarshal !!str `lots` into int",
		"train: x\ncluster: &c {<<: *c}\n":             "yaml: anchor 'c' value contains itself",
		"c: &c {nodes: 2}\ncluster: *c\ntrain: x\n":    "",
	} {
		s, err := parseJobSpec(text)
		var ae *api.Error
		switch {
		case want == "" && (err != nil || s.Cluster.Nodes != 2):
			t.Errorf("%q: %v, nodes %d", text, err, s.Cluster.Nodes)
		case want != "" && (!errors.As(err, &ae) || !strings.HasPrefix(ae.Message, want)):
			t.Errorf("%q: %#v, want %q", text, err, want)
		}
	}
}
