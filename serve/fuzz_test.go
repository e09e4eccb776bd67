package serve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fuzzServers holds one server per task for FuzzRequests, made on first use in each
// fuzzing process and never closed (the process ends with the fuzzing).
var (
	fuzzMu      sync.Mutex
	fuzzServers = map[string]*Server{}
)

func fuzzServer(t *testing.T, task string) *Server {
	fuzzMu.Lock()
	defer fuzzMu.Unlock()
	if s, ok := fuzzServers[task]; ok {
		return s
	}
	opts := DefaultOptions()
	opts.Limits.MaxTexts, opts.Limits.MaxBodyBytes = 8, 8192 // small answers keep iterations fast
	s, err := New(load(t, checkpoint(t, task)), opts)
	if err != nil {
		t.Fatal(err)
	}
	fuzzServers[task] = s
	return s
}

// Any body posted to any route of any model is answered 200 with JSON as the route
// promises, or refused with a 400 or 413 JSON error of the matching type: never a 500
// (a handler's panic is one), and never a queueing error, as nothing else loads the
// server.
func FuzzRequests(f *testing.F) {
	long := strings.Repeat("word ", maxLen)
	for _, b := range []string{
		`{"texts": ["see you at 6?", "WINNER! claim your prize"], "top_k": 2}`,
		`{"texts": ["Peter Blackburn visited Brussels ."]}`,
		`{"texts": ["` + long + long + `"]}`,
		`{"question": "Where is the tower?", "context": "The Eiffel Tower is in Paris."}`,
		`{"questions": [{"question": "When?", "context": "It was built in 1889."}, {"id": "x", "question": "", "context": "a"}], "allow_empty": true}`,
		`{"question": "` + long + `", "context": "` + long + long + long + `"}`,
		`{"text": "short"}`,
		`{"texts": ["a",]}`,
		"{\"texts\": [\"caf\xe9\"]}",
		`{"texts": ["a"], "threshold": 0.3}`,
		`{"texts": ["a", " \t"]}`,
		`{"texts": ["\u0000\uffff\ud800"]}`,
		``,
	} {
		for route := range byte(4) {
			for task := range byte(3) {
				f.Add(route, task, b)
			}
		}
	}
	routes := []string{"/v1/classify", "/v1/ner", "/v1/qa", "/v1/attention"}
	tasks := []string{"classify", "ner", "qa"}
	f.Fuzz(func(t *testing.T, route, task byte, body string) {
		path := routes[int(route)%len(routes)]
		s := fuzzServer(t, tasks[int(task)%len(tasks)])
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		s.Handler().ServeHTTP(rec, req)

		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: %d, not JSON: %.300s", path, body, rec.Code, rec.Body)
		}
		switch rec.Code {
		case http.StatusOK:
			var in classifyRequest
			if path == "/v1/attention" || path == "/v1/qa" || json.Unmarshal([]byte(body), &in) != nil {
				return
			}
			// classify and ner answer one prediction a text, in order.
			var got struct{ Predictions []json.RawMessage }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Predictions) != len(in.Texts) {
				t.Fatalf("%s %q: %d predictions for %d texts (%v): %.300s", path, body, len(got.Predictions), len(in.Texts), err, rec.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var e struct{ Error, Type string }
			json.Unmarshal(rec.Body.Bytes(), &e)
			want := map[int]string{http.StatusBadRequest: kindInvalid, http.StatusRequestEntityTooLarge: kindTooLarge}[rec.Code]
			if e.Error == "" || e.Type != want {
				t.Fatalf("%s %q: %d with error %q of type %q, want a message of type %s", path, body, rec.Code, e.Error, e.Type, want)
			}
		default:
			t.Fatalf("%s %q: %d %.300s", path, body, rec.Code, rec.Body)
		}
	})
}
