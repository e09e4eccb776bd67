package hf

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf/hubtest"
)

// isolate keeps the developer's own HF environment out of the test.
func isolate(t *testing.T) {
	for _, k := range []string{"HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE"} {
		t.Setenv(k, "")
	}
}

func checkpoint() map[string][]byte {
	weights := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	return map[string][]byte{
		"config.json":           []byte(bertBaseUncased),
		"model.safetensors":     weights,
		"vocab.txt":             []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n"),
		"tokenizer_config.json": []byte(`{"do_lower_case": true}`),
	}
}

func sameFiles(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("%s holds %d files, want %d: %v", dir, len(entries), len(want), entries)
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes (%v), want %d", name, len(got), err, len(data))
		}
	}
}

func TestResolveDownloadsOnceThenWorksOffline(t *testing.T) {
	isolate(t)
	files := checkpoint()
	h := hubtest.New(t, "org/tiny-bert", files)
	h.LFS["model.safetensors"] = true
	cacheDir := t.TempDir()
	t.Setenv("HF_ENDPOINT", h.Hub.URL)
	t.Setenv("HF_TOKEN", "secret")
	dir, err := Resolve("org/tiny-bert", Options{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cacheDir, "models--org--tiny-bert", "snapshots", hubtest.Commit); dir != want {
		t.Fatalf("dir %s, want %s", dir, want)
	}
	sameFiles(t, dir, files) // tokenizer.json and special_tokens_map.json 404ed: optional
	if ref, _ := os.ReadFile(filepath.Join(cacheDir, "models--org--tiny-bert", "refs", "main")); string(ref) != hubtest.Commit {
		t.Fatalf("refs/main = %q", ref)
	}
	log := h.Requests()
	for _, l := range log {
		if strings.HasPrefix(l, "hub") && !strings.Contains(l, `auth="Bearer secret"`) {
			t.Errorf("hub request without the token: %s", l)
		}
		// After the first response names the commit, files are fetched by commit.
		if strings.HasPrefix(l, "hub") && !strings.Contains(l, "/resolve/main/config.json") && !strings.Contains(l, "/resolve/"+hubtest.Commit+"/") {
			t.Errorf("request not pinned to the commit: %s", l)
		}
	}
	if _, err := os.ReadDir(filepath.Join(cacheDir, "models--org--tiny-bert", "blobs")); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "models--org--tiny-bert", "blobs", "*")); len(left) != 0 {
		t.Fatalf("partial downloads left: %v", left)
	}

	// The second call needs no network at all.
	n := len(log)
	again, err := Resolve("org/tiny-bert", Options{CacheDir: cacheDir})
	if err != nil || again != dir || len(h.Requests()) != n {
		t.Fatalf("second call: %s, %v, %d new requests", again, err, len(h.Requests())-n)
	}
	h.Hub.Close()
	t.Setenv("HF_HUB_OFFLINE", "1")
	if again, err := Resolve("org/tiny-bert", Options{CacheDir: cacheDir}); err != nil || again != dir {
		t.Fatalf("offline: %s, %v", again, err)
	}
	if again, err := Resolve("org/tiny-bert", Options{CacheDir: cacheDir, Revision: hubtest.Commit}); err != nil || again != dir {
		t.Fatalf("offline by commit: %s, %v", again, err)
	}
}

func TestResolveFallsBackToPytorchBin(t *testing.T) {
	isolate(t)
	files := checkpoint()
	files["pytorch_model.bin"] = files["model.safetensors"]
	delete(files, "model.safetensors")
	delete(files, "vocab.txt")
	files["tokenizer.json"] = []byte(`{"model": {}}`)
	h := hubtest.New(t, "bert-tiny", files)
	dir, err := Resolve("bert-tiny", Options{CacheDir: t.TempDir(), Endpoint: h.Hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dir, files)
}

// A checkpoint whose only tokenizer is a slow one's files (deberta-v3's spm.model,
// RoBERTa's vocab.json and merges.txt) downloads with them; merges.txt alone is none.
func TestResolveSlowTokenizerFiles(t *testing.T) {
	isolate(t)
	for _, tok := range []map[string][]byte{
		{"spm.model": []byte("sentencepiece"), "tokenizer_config.json": []byte(`{"tokenizer_class": "DebertaV2Tokenizer"}`)},
		{"vocab.json": []byte(`{"<s>": 0}`), "merges.txt": []byte("#version: 0.2\n")},
		{"spiece.model": []byte("sentencepiece")},
	} {
		files := checkpoint()
		delete(files, "vocab.txt")
		delete(files, "tokenizer_config.json")
		maps.Copy(files, tok)
		h := hubtest.New(t, "org/slow", files)
		dir, err := Resolve("org/slow", Options{CacheDir: t.TempDir(), Endpoint: h.Hub.URL})
		if err != nil {
			t.Fatal(err)
		}
		sameFiles(t, dir, files)
	}
	files := checkpoint()
	delete(files, "vocab.txt")
	files["merges.txt"] = []byte("#version: 0.2\n")
	h := hubtest.New(t, "org/half", files)
	if _, err := Resolve("org/half", Options{CacheDir: t.TempDir(), Endpoint: h.Hub.URL}); err == nil || !strings.Contains(err.Error(), "the hub has no tokenizer") {
		t.Fatalf("merges.txt alone: %v", err)
	}
}

// A sentence-transformers model (all-mpnet-base-v2's layout) downloads with its modules,
// pooling and length, which say how it embeds.
func TestResolveSentenceTransformersFiles(t *testing.T) {
	isolate(t)
	files := checkpoint()
	files["modules.json"] = []byte(`[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]`)
	files["1_Pooling/config.json"] = []byte(`{"word_embedding_dimension": 768, "pooling_mode_mean_tokens": true}`)
	files["sentence_bert_config.json"] = []byte(`{"max_seq_length": 384, "do_lower_case": false}`)
	h := hubtest.New(t, "sentence-transformers/all-mpnet-base-v2", files)
	dir, err := Resolve("sentence-transformers/all-mpnet-base-v2", Options{CacheDir: t.TempDir(), Endpoint: h.Hub.URL})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dir, files)
}

func TestResolveOfflineWithoutCache(t *testing.T) {
	isolate(t)
	cacheDir := t.TempDir()
	_, err := Resolve("bert-base-uncased", Options{CacheDir: cacheDir, Offline: true, Endpoint: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "not in the cache "+cacheDir) || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("error %v", err)
	}
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_OFFLINE", "true")
	_, err = Resolve("org/name", Options{})
	if err == nil || !strings.Contains(err.Error(), "not in the cache "+filepath.Join(home, "hub")) {
		t.Fatalf("error %v, want the cache under $HF_HOME", err)
	}
}

func TestResolveServerErrors(t *testing.T) {
	isolate(t)
	cases := []struct {
		name   string
		status map[string]int
		drop   string
		want   string
	}{
		{"500 on a file", map[string]int{"vocab.txt": 500}, "", "vocab.txt: HEAD " + "%s/org/m/resolve/" + hubtest.Commit + "/vocab.txt: 500 Internal Server Error"},
		{"gated", map[string]int{"config.json": 401}, "", "set HF_TOKEN"},
		{"no config", nil, "config.json", "the hub has none of config.json"},
		{"no weights", nil, "model.safetensors", "none of model.safetensors, pytorch_model.bin"},
		{"no tokenizer", nil, "vocab.txt", "the hub has no tokenizer (tokenizer.json, vocab.txt, vocab.json with merges.txt, spiece.model or spm.model)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := checkpoint()
			delete(files, c.drop)
			h := hubtest.New(t, "org/m", files)
			for k, v := range c.status {
				h.Status[k] = v
			}
			cacheDir := t.TempDir()
			_, err := Resolve("org/m", Options{CacheDir: cacheDir, Endpoint: h.Hub.URL})
			want := c.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, h.Hub.URL)
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want %q", err, want)
			}
			if _, err := Resolve("org/m", Options{CacheDir: cacheDir, Offline: true}); err == nil {
				t.Fatal("a failed download counts as cached")
			}
		})
	}
}

func TestResolveResumesTruncatedDownload(t *testing.T) {
	isolate(t)
	files := checkpoint()
	h := hubtest.New(t, "org/m", files)
	h.LFS["model.safetensors"] = true
	h.Truncate["model.safetensors"] = true
	cacheDir := t.TempDir()
	opts := Options{CacheDir: cacheDir, Endpoint: h.Hub.URL}
	_, err := Resolve("org/m", opts)
	if err == nil || !strings.Contains(err.Error(), "partial download kept") {
		t.Fatalf("truncated body: %v", err)
	}
	snap := filepath.Join(cacheDir, "models--org--m", "snapshots", hubtest.Commit)
	if _, err := os.Stat(filepath.Join(snap, "model.safetensors")); !os.IsNotExist(err) {
		t.Fatal("a truncated download is visible as the file")
	}
	dir, err := Resolve("org/m", opts)
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dir, files)
	half := len(files["model.safetensors"]) / 2
	var resumed, configAgain bool
	for _, l := range h.Requests() {
		resumed = resumed || strings.Contains(l, fmt.Sprintf("cdn GET /model.safetensors range=\"bytes=%d-\"", half))
		configAgain = configAgain || strings.Contains(l, "GET /org/m/resolve/"+hubtest.Commit+"/config.json")
	}
	if !resumed {
		t.Fatalf("no Range request resumed at byte %d: %v", half, h.Requests())
	}
	if configAgain {
		t.Fatal("config.json was downloaded twice")
	}
}

func TestResolveRejectsChecksumMismatch(t *testing.T) {
	isolate(t)
	files := checkpoint()
	h := hubtest.New(t, "org/m", files)
	h.LFS["model.safetensors"] = true
	h.Etag["model.safetensors"] = strings.Repeat("ab", 32)
	cacheDir := t.TempDir()
	_, err := Resolve("org/m", Options{CacheDir: cacheDir, Endpoint: h.Hub.URL})
	if err == nil || !strings.Contains(err.Error(), "does not match the hub's "+strings.Repeat("ab", 32)) {
		t.Fatalf("error %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "models--org--m", "*", "*", "model.safetensors")); len(left) != 0 {
		t.Fatalf("corrupt file kept: %v", left)
	}
}

func TestResolveLocalDirectory(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if got, err := Resolve(dir, Options{Offline: true}); err != nil || got != dir {
		t.Fatalf("%s, %v", got, err)
	}
	file := filepath.Join(dir, "config.json")
	os.WriteFile(file, []byte("{}"), 0o644)
	if _, err := Resolve(file, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file instead of directory: %v", err)
	}
	for _, bad := range []string{"./missing-model", "/no/such/dir", "a/b/c", "org/../x"} {
		if _, err := Resolve(bad, Options{Endpoint: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "no such directory") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
