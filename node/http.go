package node

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/tarball"
)

// validName is what a job ID or a result kind may look like in a path.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ResultsHandler serves the models this node keeps, as the tar streams the coordinator
// stores: GET /v1/jobs/{id}/results/{kind} for kind final or best. A finished job's
// model can be fetched from any node that trained it, even when the coordinator's
// copy is not there yet. Requests carry the cluster's API token.
func ResultsHandler(dir, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}/results/{kind}", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			httpError(w, http.StatusUnauthorized, "", "missing or wrong bearer token")
			return
		}
		id, kind := r.PathValue("id"), r.PathValue("kind")
		if !validName.MatchString(id) {
			httpError(w, http.StatusBadRequest, "id", "bad job id %q", id)
			return
		}
		if kind != "final" && kind != "best" {
			httpError(w, http.StatusBadRequest, "kind", "kind %q: want final or best", kind)
			return
		}
		src := filepath.Join(dir, "jobs", id, kind)
		if _, err := os.Stat(filepath.Join(src, "config.json")); err != nil {
			if _, terr := os.Stat(filepath.Join(src, ToyConfigFile)); terr != nil {
				httpError(w, http.StatusNotFound, "", "this node holds no %s model of job %s", kind, id)
				return
			}
		}
		w.Header().Set("Content-Type", "application/x-tar")
		tarball.Pack(src, w)
	})
	return mux
}

func httpError(w http.ResponseWriter, code int, field, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Message: fmt.Sprintf(format, args...), Field: field})
}
