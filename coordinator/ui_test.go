package coordinator_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/coordinator/coordtest"
)

// The dashboard's files are served without a token, with a policy that allows no
// script but its own; what they read still needs one. / leads to it.
func TestDashboardServed(t *testing.T) {
	c := coordtest.New(t, coordtest.Options{})
	addr := c.Servers[0].APIAddr()
	for path, want := range map[string][2]string{
		"/ui/":          {"text/html", `<script src="app.js">`},
		"/ui/app.js":    {"text/javascript", "function jobsTable"},
		"/ui/style.css": {"text/css", "table {"},
	} {
		code, h, body := raw(t, "GET", addr, path, "", nil)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), want[0]) || !strings.Contains(string(body), want[1]) {
			t.Errorf("GET %s: %d %s %.80q", path, code, h.Get("Content-Type"), body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: policy %q", path, csp)
		}
	}
	if code, _, _ := raw(t, "GET", addr, "/ui/missing.js", "", nil); code != http.StatusNotFound {
		t.Errorf("a file the dashboard lacks: %d", code)
	}
	if code, _, _ := raw(t, "GET", addr, "/v1/status", "", nil); code != http.StatusUnauthorized {
		t.Errorf("the API without a token: %d", code)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The dashboard's rendering (escaping, tables, curves, chart) passes its own tests,
// run by Node.js, which machines of this project have (Debian's nodejs elsewhere).
func TestDashboardScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the dashboard's script tests need Node.js")
	}
	out, err := exec.Command(node, "--test", "ui/ui_test.js").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test ui/ui_test.js: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# pass 8") || !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test ui/ui_test.js:\n%s", out)
	}
}
