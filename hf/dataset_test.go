package hf

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf/hubtest"
)

func TestDatasetFileDownloadsOnceThenWorksOffline(t *testing.T) {
	isolate(t)
	data := bytes.Repeat([]byte("PAR1 rows "), 1000)
	h := hubtest.New(t, "datasets/org/sms", map[string][]byte{"data/train-00000-of-00001.parquet": data})
	h.LFS["data/train-00000-of-00001.parquet"] = true
	cacheDir := t.TempDir()
	t.Setenv("HF_ENDPOINT", h.Hub.URL)
	t.Setenv("HF_TOKEN", "secret")
	t.Setenv("HF_HUB_CACHE", cacheDir)

	const u = "hf://datasets/org/sms/data/train-00000-of-00001.parquet"
	paths, err := DatasetFiles(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cacheDir, "datasets--org--sms", "snapshots", hubtest.Commit, "data", "train-00000-of-00001.parquet")
	if len(paths) != 1 || paths[0] != want {
		t.Fatalf("paths %v, want [%s]", paths, want)
	}
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), want %d", len(got), err, len(data))
	}
	if ref, _ := os.ReadFile(filepath.Join(cacheDir, "datasets--org--sms", "refs", "main")); string(ref) != hubtest.Commit {
		t.Fatalf("refs/main = %q", ref)
	}
	reqs := h.Requests()
	if !strings.Contains(reqs[0], "hub HEAD /datasets/org/sms/resolve/main/data/train-00000-of-00001.parquet") || !strings.Contains(reqs[0], `auth="Bearer secret"`) {
		t.Fatalf("requests %q", reqs)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	again, err := DatasetFiles(u, Options{})
	if err != nil || !slices.Equal(again, paths) || len(h.Requests()) != len(reqs) {
		t.Fatalf("offline: %v, %v; %d requests, want %d", again, err, len(h.Requests()), len(reqs))
	}
	if _, err := DatasetFiles("hf://datasets/org/sms@v2/data/train-00000-of-00001.parquet", Options{}); err == nil || !strings.Contains(err.Error(), "not in the cache") {
		t.Fatalf("offline, revision v2 never downloaded: err %v", err)
	}
}

func TestDatasetSplitFilesInTheHubsOrder(t *testing.T) {
	isolate(t)
	files := map[string][]byte{
		"default/train/0000.parquet": []byte("first part"),
		"default/train/0001.parquet": []byte("second part"),
	}
	h := hubtest.New(t, "datasets/org/sst2", files)
	h.LFS["default/train/0001.parquet"] = true
	api := "/api/datasets/org/sst2/parquet/default/train"
	// The listing's URLs are the API's, which redirect to the files of the conversion.
	h.API = map[string]any{
		api:                api,
		api + "/1.parquet": "/datasets/org/sst2/resolve/refs%2Fconvert%2Fparquet/default/train/0001.parquet",
		api + "/0.parquet": "/datasets/org/sst2/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet",
	}
	h.API[api] = []string{h.Hub.URL + api + "/0.parquet", h.Hub.URL + api + "/1.parquet"}
	cacheDir := t.TempDir()
	t.Setenv("HF_ENDPOINT", h.Hub.URL)
	t.Setenv("HF_HUB_CACHE", cacheDir)

	for _, u := range []string{"hf://datasets/org/sst2@~parquet/default/train", "hf://datasets/org/sst2@~parquet/default/train/*.parquet"} {
		paths, err := DatasetFiles(u, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 2 {
			t.Fatalf("%s: %v", u, paths)
		}
		for i, name := range []string{"default/train/0000.parquet", "default/train/0001.parquet"} {
			if got, _ := os.ReadFile(paths[i]); !bytes.Equal(got, files[name]) {
				t.Fatalf("%s: part %d holds %q, want %q", u, i, got, files[name])
			}
			if !strings.HasPrefix(paths[i], filepath.Join(cacheDir, "datasets--org--sst2", "snapshots", hubtest.Commit, "default", "train")+"/") {
				t.Fatalf("part %d at %s", i, paths[i])
			}
		}
	}
	// A listing that points away from the hub is refused: the token would go with it.
	h.API[api] = []string{"http://elsewhere.example/0.parquet"}
	if _, err := DatasetFiles("hf://datasets/org/sst2@~parquet/default/train", Options{}); err == nil || !strings.Contains(err.Error(), "not a Parquet file at "+h.Hub.URL) {
		t.Fatalf("err %v", err)
	}
	if _, err := DatasetFiles("hf://datasets/org/sst2@~parquet/default/test", Options{}); err == nil || !strings.Contains(err.Error(), "no Parquet conversion of config/split default/test") {
		t.Fatalf("err %v", err)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	if _, err := DatasetFiles("hf://datasets/org/sst2@~parquet/default/train", Options{}); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("offline: err %v", err)
	}
}

func TestDatasetURLErrors(t *testing.T) {
	isolate(t)
	h := hubtest.New(t, "datasets/org/sms", map[string][]byte{"train.csv": []byte("text,label\n")})
	t.Setenv("HF_ENDPOINT", h.Hub.URL)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	for u, want := range map[string]string{
		"hf://models/org/bert/config.json":  "not a dataset URL",
		"hf://datasets/org/sms":             "no file named",
		"hf://datasets/org/sms/":            "no file named",
		"hf://datasets/sms/train.csv":       "no file named",
		"hf://datasets/org/sms/a/../b.csv":  "bad path",
		"hf://datasets/org/s$s/train.csv":   "not a dataset repository id",
		"hf://datasets/org/sms/test.csv":    "the hub at " + h.Hub.URL + " has no such dataset file (revision main)",
		"hf://datasets/org/sms@%zz/x.csv":   "bad revision",
		"hf://datasets/org/sms@..%2Fx/a.cs": "bad revision",
	} {
		if _, err := DatasetFiles(u, Options{}); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), u+": ") {
			t.Errorf("%s: err %v, want %q", u, err, want)
		}
	}
}
