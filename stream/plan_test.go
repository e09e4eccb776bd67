package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
)

// TestHeldOutIsTrainsSplit pins HeldOut to the definition train used before it moved
// here: FNV-1a of fmt's "%d".
func TestHeldOutIsTrainsSplit(t *testing.T) {
	old := func(i int, frac float64) bool {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d", i)
		return float64(h.Sum64()%1_000_000) < frac*1_000_000
	}
	for _, frac := range []float64{0, 0.01, 0.1, 0.25, 0.5, 0.999} {
		for i := range 200_000 {
			if HeldOut(i, frac) != old(i, frac) {
				t.Fatalf("HeldOut(%d, %g) = %v, train's split says %v", i, frac, HeldOut(i, frac), old(i, frac))
			}
		}
	}
}

// checkPlan compares a plan with what shard reads from the file: the numbering, the
// eval split, the blocks, the labels and the file's digest.
func checkPlan(t *testing.T, d dataset, p *Plan, opts Options) {
	t.Helper()
	recs := shardRecords(t, d.spec, d.path)
	if p.Records != len(recs) {
		t.Fatalf("%s: plan has %d records, shard reads %d", d.name, p.Records, len(recs))
	}
	var train []shard.Record
	for i, r := range recs {
		if p.IsHeldOut(i) != (opts.EvalSplit > 0 && HeldOut(i, opts.EvalSplit)) {
			t.Fatalf("%s: record %d held out: %v", d.name, i, p.IsHeldOut(i))
		}
		if !p.IsHeldOut(i) {
			train = append(train, r)
		}
		b := p.Blocks[p.BlockOf(i)]
		if i < b.First || i >= b.First+b.Count || r.Pos.Offset < b.Start || r.Pos.Offset >= b.End {
			t.Fatalf("%s: record %d at byte %d, its block %+v", d.name, i, r.Pos.Offset, b)
		}
		if i == b.First && (r.Pos.Offset != b.Start || r.Pos.Line != b.Line || r.Pos.Index != b.Index) {
			t.Fatalf("%s: block %+v starts at record %d, at %+v", d.name, b, i, r.Pos)
		}
	}
	if p.Train != len(train) {
		t.Fatalf("%s: %d training records, want %d", d.name, p.Train, len(train))
	}
	labels, err := shard.CollectLabels(shard.SliceSource(train))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Labels, labels.Names()) && len(p.Labels)+labels.Len() > 0 {
		t.Fatalf("%s: labels %q, want %q", d.name, p.Labels, labels.Names())
	}
	content, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(content); p.SHA256 != hex.EncodeToString(sum[:]) || p.Size != int64(len(content)) {
		t.Fatalf("%s: sha256 %s size %d, want %x %d", d.name, p.SHA256, p.Size, sum, len(content))
	}
	if want := (len(recs) + opts.BlockRecords - 1) / opts.BlockRecords; len(p.Blocks) != want {
		t.Fatalf("%s: %d blocks, want %d", d.name, len(p.Blocks), want)
	}
}

func TestBuild(t *testing.T) {
	opts := Options{BlockRecords: 7, EvalSplit: 0.2}
	for _, d := range append(synthetic(t, 300), realDatasets(t)...) {
		p := build(t, d, opts)
		checkPlan(t, d, p, opts)
		// The JSON form reads back the same plan.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Plan
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if !reflect.DeepEqual(p, &q) {
			t.Fatalf("%s: the plan changed through JSON:\n%+v\n%+v", d.name, p, &q)
		}
	}
}

// TestPlanIsCompact: the JSON holds a few bytes per block and a bit per record, not
// a number per record.
func TestPlanIsCompact(t *testing.T) {
	var b strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&b, "%d question number %d ?\n", i%6, i)
	}
	d := dataset{"labeltext", shard.Spec{Format: shard.LabelText}, writeFile(t, "big.txt", b.String())}
	p := build(t, d, Options{BlockRecords: 256, EvalSplit: 0.1})
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	// 100k/8 bytes of bitmap in base64, and 391 blocks.
	if len(js) > 100_000/8*4/3+391*40+2000 {
		t.Fatalf("plan of 100k records is %d bytes", len(js))
	}
	t.Logf("plan of %d records, %d blocks: %d bytes", p.Records, len(p.Blocks), len(js))
}

func TestBuildSkipsBadRecords(t *testing.T) {
	data := "0 fine\nnolabel\n1 also fine\n\n2 third\nbad\n"
	path := writeFile(t, "bad.txt", data)
	spec := shard.Spec{Format: shard.LabelText, Delimiter: " ", SkipBadRecords: true}
	// Without skipping, the first bad record fails the plan, naming file, line and field.
	_, err := Build(path, shard.Spec{Format: shard.LabelText, Delimiter: " "}, Options{BlockRecords: 2})
	if err == nil || !strings.Contains(err.Error(), "bad.txt:2 ") {
		t.Fatalf("bad record: got %v, want an error at bad.txt:2", err)
	}
	d := dataset{"skip", spec, path}
	p := build(t, d, Options{BlockRecords: 2})
	checkPlan(t, d, p, Options{BlockRecords: 2})
	if p.Records != 3 || p.Bad.Count != 2 || p.Blocks[0].End <= int64(strings.Index(data, "1 also")) {
		t.Fatalf("%d records, %d bad, blocks %+v; want 3 and 2, block 0 across the bad line", p.Records, p.Bad.Count, p.Blocks)
	}
}

func TestBuildErrors(t *testing.T) {
	csv := writeFile(t, "e.csv", "text,label\nhello,pos\n\"unclosed,neg\n")
	for _, c := range []struct {
		path string
		spec shard.Spec
		opts Options
		want string
	}{
		{csv, shard.Spec{}, Options{BlockRecords: 4}, "e.csv:3 "},
		{csv, shard.Spec{Label: "missing"}, Options{BlockRecords: 4}, `column "missing" is not in the header`},
		{writeFile(t, "one.txt", "a hello\na bye\n"), shard.Spec{Format: shard.LabelText}, Options{BlockRecords: 4, Task: "classify"}, "only 1 class"},
		{writeFile(t, "e.txt", "\n\n"), shard.Spec{Format: shard.LabelText}, Options{BlockRecords: 4}, "no records"},
		{csv, shard.Spec{}, Options{}, "block_records 0"},
		{csv, shard.Spec{}, Options{BlockRecords: 1, EvalSplit: 1}, "eval_split 1"},
	} {
		_, err := Build(c.path, c.spec, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: got %v, want %q", c.path, c.opts, err, c.want)
		}
	}
	// Name replaces the path in errors (a blob store's path is no help).
	_, err := Build(csv, shard.Spec{Format: shard.CSV}, Options{BlockRecords: 4, Name: "upload/train.csv"})
	if err == nil || !strings.HasPrefix(err.Error(), "upload/train.csv:3 ") {
		t.Errorf("named: got %v", err)
	}
}

func TestPlanJSONChecked(t *testing.T) {
	d := synthetic(t, 40)[3]
	p := build(t, d, Options{BlockRecords: 8, EvalSplit: 0.3})
	good, _ := json.Marshal(p)
	for _, c := range []struct{ from, to, want string }{
		{`"version":1`, `"version":2`, "version 2"},
		{`"train":`, `"train":1`, "training records"},
		{`"records":40`, `"records":41`, "block columns"},
		{`"len":[`, `"len":[-`, "block 0"},
	} {
		bad := strings.Replace(string(good), c.from, c.to, 1)
		if bad == string(good) {
			t.Fatalf("%q not in %s", c.from, good)
		}
		var q Plan
		if err := json.Unmarshal([]byte(bad), &q); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: got %v, want %q", c.from, c.to, err, c.want)
		}
	}
}
