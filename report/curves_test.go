package report

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

const sampleLog = `{"step": 1, "epoch": 0.1, "loss": 2.5, "lr": 1e-5}
{"step": 2, "epoch": 0.2, "loss": 2.0, "lr": 2e-5, "note": "warmup"}

{"step": 2, "eval_loss": 2.2, "eval_f1": 0.4, "eval_runtime": null}
{"step": 3, "epoch": 0.3, "loss": 1.5, "lr": 1.5e-5}
`

func TestReadMetricsLog(t *testing.T) {
	log, err := ReadMetricsLog(strings.NewReader(sampleLog), "metrics.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range log.Series {
		names = append(names, s.Name)
	}
	// step and epoch are axes, strings and nulls are not plotted.
	if want := []string{"eval_f1", "eval_loss", "loss", "lr"}; !slices.Equal(names, want) {
		t.Fatalf("series %v, want %v", names, want)
	}
	loss := log.Series[2]
	if !slices.Equal(loss.Steps, []float64{1, 2, 3}) || !slices.Equal(loss.Values, []float64{2.5, 2.0, 1.5}) {
		t.Errorf("loss series %v / %v", loss.Steps, loss.Values)
	}
	if f1 := log.Series[0]; !slices.Equal(f1.Steps, []float64{2}) || !slices.Equal(f1.Values, []float64{0.4}) {
		t.Errorf("eval_f1 series %v / %v", f1.Steps, f1.Values)
	}

	var titles []string
	for _, p := range panels(log) {
		var ns []string
		for _, s := range p.series {
			ns = append(ns, s.Name)
		}
		titles = append(titles, p.title+"="+strings.Join(ns, "+"))
	}
	// loss first with its eval counterpart after the training curve, then lr.
	if want := []string{"loss=loss+eval_loss", "lr=lr", "f1=eval_f1"}; !slices.Equal(titles, want) {
		t.Errorf("panels %v, want %v", titles, want)
	}
}

func TestReadMetricsLogErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{\"step\":1,\"loss\":1}\n{\"step\":2,\"loss\":", "m.jsonl:2: not a JSON object"},
		{"\n\n{\"loss\":1}\n", `m.jsonl:3: field "step" missing`},
		{"{\"step\":\"ten\",\"loss\":1}\n", `m.jsonl:1: field "step" is ten, want a number`},
		{"[1,2]\n", "m.jsonl:1: not a JSON object"},
		{"", "m.jsonl: no metric values in 0 lines"},
		{"{\"step\":1}\n", "m.jsonl: no metric values in 1 lines"},
	} {
		_, err := ReadMetricsLog(strings.NewReader(tc.in), "m.jsonl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadMetricsLog(%q) error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCurvesPNG(t *testing.T) {
	log, err := ReadMetricsLog(strings.NewReader(sampleLog), "metrics.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := CurvesPNG(&buf, log, 900, 600); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, buf.Bytes(), 900, 600)
	// The first series colour (training curves) must be drawn.
	b := img.Bounds()
	blue := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 0x40 && g>>8 > 0x60 && g>>8 < 0x90 && bl>>8 > 0xa0 {
				blue++
			}
		}
	}
	if blue < 100 {
		t.Errorf("only %d pixels of the training curve colour", blue)
	}
	if err := CurvesPNG(&buf, &MetricsLog{}, 900, 600); err == nil {
		t.Error("an empty log rendered")
	}
}
