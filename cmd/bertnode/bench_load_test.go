package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// bench load posts one text per request as {"texts": [text]}, reports the answers, and
// names what is missing.
func TestBenchLoad(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Texts []string }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil || len(req.Texts) != 1 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[req.Texts[0]] = true
		mu.Unlock()
	}))
	defer srv.Close()
	texts := filepath.Join(t.TempDir(), "texts.tsv")
	if err := os.WriteFile(texts, []byte("ham\tsee you\nspam\twin a prize\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "bench", "load", "--url", srv.URL, "--texts", texts, "--concurrency", "2", "--warmup", "0s", "--duration", "300ms")
	if !strings.Contains(out, "2 clients:") || !strings.Contains(out, " 0 errors") || !seen["see you"] || !seen["win a prize"] {
		t.Fatalf("output %q, texts seen %v", out, seen)
	}
	if _, _, err := bertnode(t, "", "bench", "load", "--texts", texts); err == nil || !strings.Contains(err.Error(), "--url") {
		t.Fatalf("without --url: %v", err)
	}
}
