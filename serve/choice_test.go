package serve

import (
	"fmt"
	"math"
	"testing"

	"github.com/bertnode/bertnode/train"
)

// /v1/choice answers predict's pick and probabilities, for one question or a list.
func TestChoiceAnswersAsPredict(t *testing.T) {
	dir := checkpoint(t, "choice")
	ref := load(t, dir)
	srv := start(t, load(t, dir), nil)
	qs := []train.ChoiceQuestion{
		{Text: "She opened the umbrella because", Choices: []string{"it was sunny", "it was raining", "she was hungry"}},
		{Text: "The dog barked at", Choices: []string{"the mail carrier", "nothing"}},
	}
	want, err := ref.PredictChoices(qs)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, got, want train.ChoiceAnswer) {
		t.Helper()
		if got.Text != want.Text || got.Index != want.Index || got.Choice != want.Choice || len(got.Probs) != len(want.Probs) {
			t.Fatalf("%s: %+v, predict says %+v", what, got, want)
		}
		var sum float64
		for k, p := range got.Probs {
			sum += p
			if math.Abs(p-want.Probs[k]) > 1e-5 {
				t.Errorf("%s: P(choice %d) = %v, predict says %v", what, k, p, want.Probs[k])
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("%s: probabilities sum to %v", what, sum)
		}
	}
	got := post[choiceResponse](t, srv.url+"/v1/choice", jsonBody(t, map[string]any{"questions": qs}))
	if len(got.Answers) != 2 {
		t.Fatalf("%d answers for 2 questions", len(got.Answers))
	}
	for i := range qs {
		same(fmt.Sprintf("question %d", i), got.Answers[i], want[i])
	}
	one := post[choiceResponse](t, srv.url+"/v1/choice", jsonBody(t, map[string]any{"text": qs[1].Text, "choices": qs[1].Choices}))
	same("one question", one.Answers[0], want[1])

	u := srv.url + "/v1/choice"
	for _, c := range []struct{ body, want string }{
		{`{}`, "text and choices, or questions: required"},
		{`{"text": "a", "choices": ["x"]}`, "choices: 1; want two or more"},
		{`{"text": "a", "choices": ["x", " "]}`, "choices[1]: empty text"},
		{`{"questions": [{"text": " ", "choices": ["x", "y"]}]}`, "questions[0].text: empty text"},
		{`{"text": "a", "choices": ["x", "y"], "questions": []}`, "not both"},
	} {
		wantError(t, "POST", u, c.body, 400, kindInvalid, c.want)
		if got := post[choiceResponse](t, u, `{"text": "a", "choices": ["x", "y"]}`); len(got.Answers) != 1 {
			t.Fatalf("after %q: %+v", c.body, got)
		}
	}
	cls := start(t, load(t, checkpoint(t, "classify")), nil)
	wantError(t, "POST", cls.url+"/v1/choice", `{"text": "a", "choices": ["x", "y"]}`, 400, kindInvalid, "/v1/choice needs a choice model")
}
