package ringbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/allreduce"
)

// TestMain lets RunLocal start this test binary as its rank processes.
func TestMain(m *testing.M) {
	if IsWorker() {
		if err := Worker(context.Background(), os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunLocal starts three rank processes over loopback and checks the report: one
// row per size, in the table and as JSON, with the bytes each rank really sent.
func TestRunLocal(t *testing.T) {
	var out bytes.Buffer
	o := Options{Ranks: 3, Sizes: []int64{1 << 20, 3 << 20}, Codecs: []allreduce.Codec{allreduce.CodecS2}, Data: "random",
		Iters: 3, Warmup: 1, Seed: 1, ChunkElems: 1 << 14}
	res, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"}, &out)
	if err != nil {
		t.Fatal(err, out.String())
	}
	if len(res) != 2 || res[0].SizeBytes != 1<<20 || res[1].SizeBytes != 3<<20 {
		t.Fatalf("results %+v, want one per size", res)
	}
	for _, r := range res {
		// each rank sends 2(n-1)/n of the buffer, compressed; random float32 barely compresses
		raw := float64(r.SizeBytes) * 4 / 3
		if r.Ratio < 0.95 || r.Ratio > 2 || math.Abs(float64(r.WirePerRank)*r.Ratio-raw)/raw > 0.01 {
			t.Errorf("size %d: wire %d bytes at ratio %.2f, want about %.0f logical bytes", r.SizeBytes, r.WirePerRank, r.Ratio, raw)
		}
		if r.MedianSeconds <= 0 || r.BusBW != r.AlgBW*4/3 || r.Iters != 3 || r.CPUPerRank <= 0 {
			t.Errorf("inconsistent row %+v", r)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasPrefix(lines[0], "data") || !strings.Contains(lines[0], "busbw_GB/s") {
		t.Errorf("no table header: %q", lines[0])
	}
	var back Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &back); err != nil || back != res[1] {
		t.Errorf("last JSON line %q does not round-trip to %+v (%v)", lines[len(lines)-1], res[1], err)
	}
}

// TestRunLocalCodecsTakeTurns measures two codecs in one run: a row each, the lossy
// one sending half the bytes, each compared with codec none's.
func TestRunLocalCodecsTakeTurns(t *testing.T) {
	o := Options{Ranks: 2, Sizes: []int64{1 << 20}, Codecs: []allreduce.Codec{allreduce.CodecNone, allreduce.CodecBF16},
		Transports: []string{"tcp"}, Data: "random", Iters: 2, Warmup: 1, Seed: 1}
	res, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Codec != "none" || res[1].Codec != "bf16" {
		t.Fatalf("rows %+v, want none then bf16", res)
	}
	none, bf16 := res[0], res[1]
	if r := float64(none.WirePerRank) / float64(bf16.WirePerRank); r < 1.99 || r > 2.01 {
		t.Errorf("bf16 sent %d bytes a rank, none %d: want half", bf16.WirePerRank, none.WirePerRank)
	}
	if none.VsNone != 1 || math.Abs(bf16.VsNone-bf16.BusBW/none.BusBW) > 1e-12 {
		t.Errorf("vs_none: none %g, bf16 %g (busbw %g / %g)", none.VsNone, bf16.VsNone, bf16.BusBW, none.BusBW)
	}
	// The wait sums the run delay of all a rank's threads, several of which can wait at
	// once (its Ps' threads, sysmon, threads back from system calls): more than the
	// operation's own time when other tests load the cores, but not many times it.
	for _, r := range res {
		if r.CPUPerRank <= 0 || r.WaitPerRank < 0 || r.WaitPerRank > r.MedianSeconds*8 {
			t.Errorf("%s: cpu %g s, cpu wait %g s in %g s", r.Codec, r.CPUPerRank, r.WaitPerRank, r.MedianSeconds)
		}
	}
}

// TestRunLocalTransports: rank processes on one host reduce through shared memory
// when asked (nothing on the wire, the same logical bytes) and over TCP when told to,
// taking turns in one run.
func TestRunLocalTransports(t *testing.T) {
	var out bytes.Buffer
	o := Options{Ranks: 3, Sizes: []int64{3 << 20}, Transports: []string{"shm", "tcp"}, Data: "random", Iters: 2,
		Warmup: 1, Seed: 1}
	res, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(res) != 2 || res[0].Transport != "shm" || res[1].Transport != "tcp" {
		t.Fatalf("rows %+v, want shm then tcp", res)
	}
	if res[0].WirePerRank != 0 || res[1].WirePerRank < 4<<20 || res[0].BusBW <= 0 {
		t.Errorf("wire bytes a rank: shm %d, tcp %d; want none and 4 MiB", res[0].WirePerRank, res[1].WirePerRank)
	}
	if !strings.Contains(out.String(), " shm ") || !strings.Contains(out.String(), `"transport":"shm"`) {
		t.Errorf("table and JSON do not show the transport:\n%s", out.String())
	}
}

func TestRunLocalReportsRankFailure(t *testing.T) {
	o := Options{Ranks: 2, Data: "file", GradFiles: []string{filepath.Join(t.TempDir(), "missing.f32")}, Iters: 1}
	_, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "rank") {
		t.Fatalf("err = %v, want a rank's failure", err)
	}
}

func TestSyntheticBERTGradient(t *testing.T) {
	if n := BERTBaseParams(); n != 109483778 {
		t.Fatalf("BERT-base with a 2-class head has 109483778 parameters, layout gives %d", n)
	}
	g := SyntheticBERTGradient(0, 1)
	zeroRows := 0
	for r := 0; r < bertVocab; r++ {
		row := g[r*bertHidden : (r+1)*bertHidden]
		if row[0] == 0 && row[bertHidden-1] == 0 {
			zeroRows++
		}
	}
	if frac := float64(zeroRows) / bertVocab; frac < 0.97 || frac > 0.99 {
		t.Errorf("%.3f of word-embedding rows are zero, want about 0.98", frac)
	}
	dense := g[len(g)-bertHidden:]
	for i, v := range dense {
		if v == 0 {
			t.Fatalf("classifier gradient value %d is zero", i)
		}
	}
	other := SyntheticBERTGradient(1, 1)
	if other[len(other)-1] == g[len(g)-1] {
		t.Error("ranks 0 and 1 have the same gradient")
	}
}

func TestLoadGradFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "grad.f32")
	want := []float32{0, 1.5, -2, 0, 3}
	b := make([]byte, 4*len(want))
	for i, v := range want {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	os.WriteFile(path, b, 0o644)
	a, err := LoadGradFile([]string{path}, 0, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := LoadGradFile([]string{path}, 1, 2, 1)
	for i, v := range want {
		if (v == 0) != (a[i] == 0) || math.Abs(float64(a[i]-v)) > 0.3*math.Abs(float64(v)) {
			t.Errorf("value %d: %g from %g", i, a[i], v)
		}
		if v != 0 && a[i] == c[i] {
			t.Errorf("value %d identical on ranks 0 and 1", i)
		}
	}
	// with a file per rank, each rank reads its own, unchanged
	other := filepath.Join(dir, "other.f32")
	os.WriteFile(other, b[4:], 0o644)
	for rank, want := range [][]float32{want, want[1:]} {
		got, err := LoadGradFile([]string{path, other}, rank, 2, 1)
		if err != nil || len(got) != len(want) {
			t.Fatalf("rank %d: %v, %d values", rank, err, len(got))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("rank %d value %d: %g, want %g", rank, i, got[i], want[i])
			}
		}
	}
	bad := filepath.Join(dir, "bad.f32")
	os.WriteFile(bad, b[:7], 0o644)
	if _, err := LoadGradFile([]string{bad}, 0, 2, 1); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("7-byte file: err = %v, want one naming the file", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"16M": 16 << 20, "420MiB": 420 << 20, "1G": 1 << 30, "4096": 4096, "0.5K": 512} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-4", "3"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
