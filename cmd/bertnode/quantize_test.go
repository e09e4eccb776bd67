package main

import (
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// --quantize int8: eval, predict and serve run the encoder's dense layers in int8, and
// score and answer as the float32 model does, up to int8's rounding; training and
// unknown values are refused by name.
func TestQuantizeInt8Commands(t *testing.T) {
	runtime.LockOSThread()
	m := trainedSMS(t)
	out := filepath.Join(t.TempDir(), "eval")
	mustRun(t, "eval", "--model", m.dir, "--data", m.evalFile, "--format", "labeltext",
		"--max-length", "64", "--batch-size", "32", "--threads", "2", "--quantize", "int8", "--output", out)
	mf := readEvalFile(t, out)
	// The loss moved (the int8 layers ran) by little; the scores by at most a point.
	if mf.Loss == m.want.Loss || math.Abs(mf.Loss-m.want.Loss) > 0.05*m.want.Loss {
		t.Errorf("int8 eval loss %v, float32 %v: want a difference under 5%%, not none", mf.Loss, m.want.Loss)
	}
	for _, k := range []string{"accuracy", "f1_macro"} {
		if d := math.Abs(mf.Metrics[k] - m.want.Metrics[k]); d > 0.01 {
			t.Errorf("int8 eval %s %v, float32 %v", k, mf.Metrics[k], m.want.Metrics[k])
		}
	}

	texts := []string{"WINNER!! Claim your free prize now", "see you at 6?", "Call 09061701461 to claim your £900 reward"}
	float := jsonLines[train.Prediction](t, mustRun(t, append([]string{"predict", "--model", m.dir, "--max-length", "64"}, texts...)...))
	quant := jsonLines[train.Prediction](t, mustRun(t, append([]string{"predict", "--model", m.dir, "--max-length", "64", "--quantize", "int8"}, texts...)...))
	near := func(what string, got, want []train.Prediction, tol float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d predictions, want %d", what, len(got), len(want))
		}
		for i := range want {
			if got[i].Label != want[i].Label || math.Abs(got[i].Probs[want[i].Label]-want[i].Probs[want[i].Label]) > tol {
				t.Errorf("%s: text %d: %+v, want %+v within %v", what, i, got[i], want[i], tol)
			}
		}
	}
	near("predict --quantize int8 against float32", quant, float, 0.02)

	url, done := runServe(t, "--model", m.dir, "--max-length", "64", "--quantize", "int8")
	resp, err := http.Get(url + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Quantize string }
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Quantize != "int8" {
		t.Errorf("GET /v1/model: quantize %q, %v; want int8", info.Quantize, err)
	}
	var cls struct{ Predictions []train.Prediction }
	postJSON(t, url+"/v1/classify", map[string]any{"texts": texts}, &cls)
	// An activation's int8 scale is its whole batch's: a text's logits move a little
	// with the texts it is batched with.
	near("serve --quantize int8 against predict's", cls.Predictions, quant, 0.02)
	stopServe(t, done)

	wantErr(t, "", []string{`quantize: "int4": want int8 or none`},
		"eval", "--model", m.dir, "--data", m.evalFile, "--format", "labeltext", "--quantize", "int4")
	wantErr(t, "", []string{"quantize", "for eval, predict and serve"},
		"train", "--train", m.evalFile, "--format", "labeltext", "--quantize", "int8", "--output", t.TempDir())
}
