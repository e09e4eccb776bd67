package serve

import (
	"fmt"
	"math"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// /v1/fill-mask answers predict's candidates at each mask token, the top 5 unless the
// request says otherwise, for BERT and for the masked-LM checkpoints of model/testdata's
// fixtures as transformers saves them: ModernBertForMaskedLM (byte-level BPE, [MASK]
// taking the space before it), NomicBertForPreTraining, ElectraForMaskedLM and
// DebertaV2ForMaskedLM (spm.model); a text without a mask token is refused by name.
func TestFillMaskAnswersAsPredict(t *testing.T) {
	fillMaskAsPredict(t, checkpoint(t, "mlm"))
	for _, name := range []string{"modernbert", "nomic_bert", "electra", "deberta-v2"} {
		t.Run(name, func(t *testing.T) { fillMaskAsPredict(t, "../model/testdata/families/fixtures/"+name+"-mlm") })
	}
}

func fillMaskAsPredict(t *testing.T, dir string) {
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	texts := []string{"the capital of [MASK] is paris .", "[MASK] of italy is [MASK] ."}
	for _, k := range []int{0, 2} {
		body := map[string]any{"texts": texts}
		want, err := ref.FillMask(texts, 5)
		if k > 0 {
			body["top_k"] = k
			want, err = ref.FillMask(texts, k)
		}
		if err != nil {
			t.Fatal(err)
		}
		wantK := 5 // the default
		if k > 0 {
			wantK = k
		}
		got := post[fillMaskResponse](t, srv.url+"/v1/fill-mask", jsonBody(t, body))
		if len(got.Predictions) != 2 || len(got.Predictions[1].Masks) != 2 {
			t.Fatalf("top_k %d: %+v", k, got)
		}
		for i, p := range got.Predictions {
			for m, fills := range p.Masks {
				w := want[i].Masks[m]
				if len(fills) != wantK || len(w) != wantK {
					t.Fatalf("top_k %d: text %d mask %d: %d candidates, predict %d", k, i, m, len(fills), len(w))
				}
				for c, f := range fills {
					what := fmt.Sprintf("top_k %d: text %d mask %d candidate %d", k, i, m, c)
					if f.Token != w[c].Token || f.TokenStr != w[c].TokenStr || f.Sequence != w[c].Sequence || math.Abs(f.Score-w[c].Score) > 1e-5 {
						t.Errorf("%s: %+v, predict says %+v", what, f, w[c])
					}
				}
			}
		}
	}
	u := srv.url + "/v1/fill-mask"
	wantError(t, "POST", u, `{"texts": ["no mask here"]}`, 400, kindInvalid, "texts: text 1: no mask token [MASK] within the max length")
	wantError(t, "POST", u, `{"texts": ["[MASK] ."], "top_k": 0}`, 400, kindInvalid, "top_k: 0 is not in")
	var fills []train.Fill
	if got := post[fillMaskResponse](t, u, `{"texts": ["[MASK] ."]}`); len(got.Predictions[0].Masks[0]) != 5 {
		t.Errorf("default top_k: %d candidates, want 5", len(got.Predictions[0].Masks[0]))
	} else {
		fills = got.Predictions[0].Masks[0]
	}
	for c := 1; c < len(fills); c++ {
		if fills[c].Score > fills[c-1].Score {
			t.Errorf("candidates not most probable first: %+v", fills)
		}
	}
	cls := start(t, load(t, checkpoint(t, "classify")), nil)
	wantError(t, "POST", cls.url+"/v1/fill-mask", `{"texts": ["[MASK]"]}`, 400, kindInvalid, "/v1/fill-mask needs a mlm model")
}
