package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/clusterkey"
)

func TestKeygenPrintsANewSecret(t *testing.T) {
	a, b := mustRun(t, "keygen"), mustRun(t, "keygen")
	sa, err := clusterkey.Parse(a)
	if err != nil {
		t.Fatalf("keygen printed %q: %v", a, err)
	}
	if sb, _ := clusterkey.Parse(b); string(sa) == string(sb) {
		t.Fatal("two runs printed the same secret")
	}
}

func TestKeygenOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if out := mustRun(t, "keygen", "--out", path); out != "" {
		t.Fatalf("keygen --out printed %q", out)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat %s: %v, %v; want mode 0600", path, st, err)
	}
	first, err := clusterkey.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	wantErr(t, "", []string{path, "--force"}, "keygen", "--out", path)
	if again, _ := clusterkey.Load(path); string(again) != string(first) {
		t.Fatal("a refused keygen --out changed the file")
	}

	mustRun(t, "keygen", "--out", path, "--force")
	replaced, err := clusterkey.Load(path)
	if err != nil || string(replaced) == string(first) {
		t.Fatalf("--force: %v; secret changed: %v", err, string(replaced) != string(first))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("after --force, mode %v", st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestKeygenHelpSaysWhereSecretsAreRead(t *testing.T) {
	out := mustRun(t, "keygen", "--help")
	for _, w := range []string{"--secret-file", "$" + clusterkey.Env, "0600", "--force"} {
		if !strings.Contains(out, w) {
			t.Errorf("keygen --help does not mention %s:\n%s", w, out)
		}
	}
}
