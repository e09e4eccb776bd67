package tlsfiles

import (
	"crypto/tls"
	"io"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/testpki"
)

// TestLoad: files written from one CA's certificates give configs that complete a
// mutual TLS handshake; missing and unreadable files are errors naming them.
func TestLoad(t *testing.T) {
	pki := testpki.New(t, 2)
	var cfgs []*tls.Config
	for _, p := range pki {
		cfg, err := Load(testpki.WriteFiles(t, t.TempDir(), p))
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	server := cfgs[0].Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cfgs[1])
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Close()

	if cfg, err := Load("", "", ""); cfg != nil || err != nil {
		t.Fatalf("no files: %v %v", cfg, err)
	}
	if _, err := Load("cert.pem", "", ""); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a lone cert: %v", err)
	}
	if _, err := Load("/nonexistent/cert.pem", "/nonexistent/key.pem", "/nonexistent/ca.pem"); err == nil || !strings.Contains(err.Error(), "/nonexistent/cert.pem") {
		t.Fatalf("missing files: %v", err)
	}
}
