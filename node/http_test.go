package node

import (
	"archive/tar"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestResultsHandler(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "jobs", "job-1", "final")
	os.MkdirAll(final, 0o755)
	os.WriteFile(filepath.Join(final, "config.json"), []byte(`{"model_type":"bert"}`), 0o644)
	os.WriteFile(filepath.Join(final, "model.safetensors"), []byte("weights"), 0o644)
	srv := httptest.NewServer(ResultsHandler(dir, "tok"))
	defer srv.Close()
	get := func(path, token string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for path, want := range map[string]int{
		"/v1/jobs/job-1/results/final": 200, "/v1/jobs/job-1/results/best": 404,
		"/v1/jobs/job-2/results/final": 404, "/v1/jobs/job-1/results/other": 400, "/v1/jobs/..%2fx/results/final": 400,
	} {
		if r := get(path, "tok"); r.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, r.Status, want)
		}
	}
	if r := get("/v1/jobs/job-1/results/final", "wrong"); r.StatusCode != 401 {
		t.Errorf("wrong token: %s", r.Status)
	}
	r := get("/v1/jobs/job-1/results/final", "tok")
	tr := tar.NewReader(r.Body)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if files["model.safetensors"] != "weights" || len(files) != 2 {
		t.Fatalf("tar holds %v", files)
	}
}
