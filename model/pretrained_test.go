package model

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bertnode/bertnode/hf"
)

// Pretrained builds the model a checkpoint directory describes, with its weights: from
// model.safetensors when there is one, else from pytorch_model.bin.
func TestPretrainedDirectory(t *testing.T) {
	lockThread(t)
	opts := Options{Task: NER, NumLabels: 3}
	src := newModel(t, smallConfig(0.1), opts, 1)
	want := flatCopy(src)
	dir := t.TempDir()
	labels := []string{"O", "B-LOC", "I-LOC"}
	if err := src.Save(dir, labels, SaveOptions{Pytorch: true}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"", SafetensorsFile} {
		if gone != "" {
			if err := os.Remove(filepath.Join(dir, gone)); err != nil {
				t.Fatal(err)
			}
		}
		ManualSeed(2)
		m, rep, err := Pretrained(dir, hf.Options{Offline: true}, opts)
		if err != nil {
			t.Fatal(err)
		}
		sameWeights(t, m, want, "without "+gone)
		if m.Config.HiddenSize != 32 || m.Config.NumHiddenLayers != 2 || !slices.Equal(m.Config.Labels(), labels) {
			t.Fatalf("config: hidden %d, layers %d, labels %v", m.Config.HiddenSize, m.Config.NumHiddenLayers, m.Config.Labels())
		}
		if rep.Loaded != len(m.Params.List()) {
			t.Fatalf("loaded %d of %d parameters", rep.Loaded, len(m.Params.List()))
		}
	}
	if err := os.Remove(filepath.Join(dir, PytorchFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Pretrained(dir, hf.Options{Offline: true}, opts); err == nil || !strings.Contains(err.Error(), "no model.safetensors or pytorch_model.bin") {
		t.Fatalf("a directory without weights: %v", err)
	}
}

// A preset name builds a fresh model of that size.
func TestPretrainedPreset(t *testing.T) {
	lockThread(t)
	m, rep, err := Pretrained("tiny", hf.Options{Offline: true}, Options{Task: Classify, NumLabels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep != nil || m.Config.NumHiddenLayers != 2 || m.Config.HiddenSize != 128 {
		t.Fatalf("report %v, %d layers of %d", rep, m.Config.NumHiddenLayers, m.Config.HiddenSize)
	}
}

// A hub name is downloaded once from the endpoint into the cache, which then serves it
// offline.
func TestPretrainedFromHub(t *testing.T) {
	lockThread(t)
	for _, k := range []string{"HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE"} {
		t.Setenv(k, "")
	}
	opts := Options{Task: Classify, NumLabels: 2}
	src := newModel(t, smallConfig(0.1), opts, 1)
	dir := t.TempDir()
	if err := src.Save(dir, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		ConfigFile:      readFile(t, filepath.Join(dir, ConfigFile)),
		SafetensorsFile: readFile(t, filepath.Join(dir, SafetensorsFile)),
		"vocab.txt":     []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"),
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	var requests atomic.Int32
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		repo, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/resolve/")
		rev, name, _ := strings.Cut(rest, "/")
		data, ok := files[name]
		if repo != "org/bert-small" || rev != "main" && rev != commit || !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Repo-Commit", commit)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	}))
	defer hub.Close()

	cache := t.TempDir()
	ManualSeed(2)
	m, rep, err := Pretrained("org/bert-small", hf.Options{Endpoint: hub.URL, CacheDir: cache}, opts)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, m, flatCopy(src), "downloaded")
	if rep.Loaded != len(m.Params.List()) || requests.Load() == 0 {
		t.Fatalf("loaded %d of %d parameters after %d requests", rep.Loaded, len(m.Params.List()), requests.Load())
	}
	hub.Close()
	ManualSeed(3)
	m, _, err = Pretrained("org/bert-small", hf.Options{CacheDir: cache, Offline: true}, opts)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, m, flatCopy(src), "from the cache")
}
