package main

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/tlsconfig"
)

func TestCertsMakeAWorkingMutualTLSPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out := mustRun(t, "certs", "--dir", dir, "--hosts", "127.0.0.1,localhost")
	p := func(name string) string { return filepath.Join(dir, name) }
	if !strings.Contains(out, "--tls-cert "+p("server.pem")) || !strings.Contains(out, "--tls-cert "+p("client.pem")) {
		t.Errorf("certs printed:\n%s", out)
	}
	for name, mode := range map[string]os.FileMode{"ca.pem": 0o644, "server.pem": 0o644, "server-key.pem": 0o600, "client.pem": 0o644, "client-key.pem": 0o600} {
		if st, err := os.Stat(p(name)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, st, err, mode)
		}
	}

	server, err := tlsconfig.Server(p("server.pem"), p("server-key.pem"), p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsconfig.Client(p("client.pem"), p("client-key.pem"), p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			io.WriteString(c, "ok")
			c.Close()
		}
	}()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		cfg := client.Clone()
		cfg.ServerName = host
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("as %s: %v", host, err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if b, err := io.ReadAll(c); string(b) != "ok" {
			t.Fatalf("as %s: read %q, %v", host, b, err)
		}
		c.Close()
	}

	// A second run keeps the files, unless --force.
	before, _ := os.ReadFile(p("ca.pem"))
	wantErr(t, "", []string{p("ca.pem"), "--force"}, "certs", "--dir", dir)
	if after, _ := os.ReadFile(p("ca.pem")); string(after) != string(before) {
		t.Fatal("a refused certs run changed ca.pem")
	}
	mustRun(t, "certs", "--dir", dir, "--force")
	if after, _ := os.ReadFile(p("ca.pem")); string(after) == string(before) {
		t.Fatal("certs --force kept the old CA")
	}
}

func TestCertsErrors(t *testing.T) {
	wantErr(t, "", []string{"--dir"}, "certs")
	wantErr(t, "", []string{"--hosts"}, "certs", "--dir", t.TempDir(), "--hosts", "")
	wantErr(t, "", []string{"--days"}, "certs", "--dir", t.TempDir(), "--days", "0")
}
