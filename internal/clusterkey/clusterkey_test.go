package clusterkey

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripAndDerive(t *testing.T) {
	s, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(" " + s.String() + "\n")
	if err != nil || !bytes.Equal(p, s) {
		t.Fatalf("parse(%q) = %x, %v", s.String(), p, err)
	}
	keys := map[string]bool{}
	for _, purpose := range []string{API, APIRead, Gossip, Ring, Raft} {
		k := s.Derive(purpose)
		if len(k) != 32 || keys[string(k)] || bytes.Equal(k, s) {
			t.Fatalf("%s: key %x repeats another or the secret", purpose, k)
		}
		keys[string(k)] = true
	}
	other, _ := Generate()
	if bytes.Equal(other.Derive(API), s.Derive(API)) {
		t.Fatal("two secrets derive the same key")
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{"", "abc", "bn1:", "bn1:!!!", "bn1:" + strings.Repeat("A", 10), "bn2:" + strings.Repeat("A", 43)} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLoadFileThenEnv(t *testing.T) {
	s, _ := Generate()
	path := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(path, []byte(s.String()+"\n"), 0o600)
	t.Setenv(Env, "")
	if got, err := Load(path); err != nil || !bytes.Equal(got, s) {
		t.Fatalf("Load(file) = %x, %v", got, err)
	}
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Fatalf("Load with nothing given: %v", err)
	}
	t.Setenv(Env, s.String())
	if got, err := Load(""); err != nil || !bytes.Equal(got, s) {
		t.Fatalf("Load(env) = %x, %v", got, err)
	}
	os.WriteFile(path, []byte("nonsense"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a bad file's error does not name it: %v", err)
	}
}
