package coordinator

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard: static files that read the API with a token the user gives it.
//
//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// uiRoutes serves the dashboard at /ui/ without a token: the files hold no cluster
// data, and every read they make goes through the API's own authentication. The
// content security policy keeps any script but the dashboard's own off the page.
func (s *Server) uiRoutes() {
	sub, _ := fs.Sub(uiFiles, "ui")
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	s.mux.Handle("GET /ui/", s.metrics.instrument("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})))
	s.mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
}
