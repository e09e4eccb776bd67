package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type files struct{ cert, key, ca string }

// write writes pair and ca's certificate into dir as name.pem, name-key.pem and
// name-ca.pem.
func write(t *testing.T, dir, name string, ca *CA, pair Pair) files {
	t.Helper()
	f := files{filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), filepath.Join(dir, name+"-ca.pem")}
	for path, b := range map[string][]byte{f.cert: pair.CertPEM, f.key: pair.KeyPEM, f.ca: ca.CertPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func newCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *CA, name string, hosts []string, usages []x509.ExtKeyUsage) Pair {
	t.Helper()
	p, err := ca.Issue(name, hosts, usages, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// must returns a config built from f, failing the test on error.
func must(t *testing.T, build func(string, string, string) (*tls.Config, error), f files) *tls.Config {
	t.Helper()
	c, err := build(f.cert, f.key, f.ca)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs one TLS connection over loopback TCP and returns both ends' errors;
// on success the client's certificate name has reached the server and a message the
// client.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = io.WriteString(tc, tc.ConnectionState().PeerCertificates[0].Subject.CommonName)
		done <- err
	}()
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		var b []byte
		if b, err = io.ReadAll(c); err == nil && string(b) != client.Certificates[0].Leaf.Subject.CommonName {
			t.Errorf("the server saw client %q", b)
		}
	}
	return <-done, err
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	srv := write(t, dir, "server", ca, issue(t, ca, "server", []string{"127.0.0.1", "localhost"}, ServerAndClient))
	cli := write(t, dir, "client", ca, issue(t, ca, "client", nil, ClientOnly))
	if se, ce := handshake(t, must(t, Server, srv), must(t, Client, cli)); se != nil || ce != nil {
		t.Fatalf("server: %v, client: %v", se, ce)
	}
	// Peer configurations (one per member) connect both ways.
	other := write(t, dir, "other", ca, issue(t, ca, "other", []string{"127.0.0.1"}, ServerAndClient))
	p1, p2 := must(t, Peer, srv), must(t, Peer, other)
	for _, pair := range [][2]*tls.Config{{p1, p2}, {p2, p1}} {
		if se, ce := handshake(t, pair[0], pair[1]); se != nil || ce != nil {
			t.Fatalf("peers: server: %v, client: %v", se, ce)
		}
	}
}

func TestRefused(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newCA(t, "test CA"), newCA(t, "rogue CA")
	srv := write(t, dir, "server", ca, issue(t, ca, "server", []string{"127.0.0.1"}, ServerAndClient))
	cli := write(t, dir, "client", ca, issue(t, ca, "client", nil, ClientOnly))
	rogueCli := write(t, dir, "rogue-client", rogue, issue(t, rogue, "rogue", nil, ClientOnly))
	rogueSrv := write(t, dir, "rogue-server", rogue, issue(t, rogue, "rogue", []string{"127.0.0.1"}, ServerAndClient))

	// A client whose certificate another CA signed (it trusts our CA, to get that far).
	// Go's client offers no certificate the server's CAs did not sign; this one insists.
	c := must(t, Client, rogueCli)
	c.RootCAs = must(t, Client, cli).RootCAs
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c.Certificates[0], nil }
	if se, _ := handshake(t, must(t, Server, srv), c); se == nil || !strings.Contains(se.Error(), "unknown authority") {
		t.Errorf("client from another CA: server says %v", se)
	}
	// A server whose certificate another CA signed.
	if _, ce := handshake(t, must(t, Server, rogueSrv), must(t, Client, cli)); ce == nil || !strings.Contains(ce.Error(), "unknown authority") {
		t.Errorf("server from another CA: client says %v", ce)
	}
	// A client with no certificate at all.
	c = must(t, Client, cli)
	c.Certificates = nil
	if se, _ := handshake(t, must(t, Server, srv), c); se == nil || !strings.Contains(se.Error(), "certificate") {
		t.Errorf("client without a certificate: server says %v", se)
	}
	// A server certificate for another host.
	wrongHost := write(t, dir, "wrong-host", ca, issue(t, ca, "server", []string{"10.9.9.9"}, ServerAndClient))
	if _, ce := handshake(t, must(t, Server, wrongHost), must(t, Client, cli)); ce == nil || !strings.Contains(ce.Error(), "127.0.0.1") {
		t.Errorf("server certificate for another host: client says %v", ce)
	}
	// TLS 1.2.
	c = must(t, Client, cli)
	c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if se, _ := handshake(t, must(t, Server, srv), c); se == nil || !strings.Contains(se.Error(), "version") {
		t.Errorf("TLS 1.2 client: server says %v", se)
	}
}

func TestErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	good := write(t, dir, "good", ca, issue(t, ca, "good", []string{"127.0.0.1"}, ServerAndClient))
	other := write(t, dir, "other", ca, issue(t, ca, "other", []string{"127.0.0.1"}, ServerAndClient))
	expiredPair, err := ca.Issue("old", nil, ClientOnly, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	expired := write(t, dir, "expired", ca, expiredPair)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")

	for _, c := range []struct {
		cert, key, ca string
		want          []string
	}{
		{missing, good.key, good.ca, []string{missing}},
		{garbage, good.key, good.ca, []string{garbage, "CERTIFICATE"}},
		{good.cert, garbage, good.ca, []string{garbage, "PRIVATE KEY"}},
		{good.cert, good.cert, good.ca, []string{good.cert, "PRIVATE KEY"}}, // a certificate given as the key
		{good.cert, other.key, good.ca, []string{good.cert, other.key}},     // a key of another pair
		{good.cert, good.key, garbage, []string{garbage}},
		{good.cert, good.key, good.key, []string{good.key, "CERTIFICATE"}}, // a key given as the CA
		{good.cert, good.key, "", []string{"no certificate file"}},
		{expired.cert, expired.key, expired.ca, []string{expired.cert, "valid"}},
	} {
		for name, build := range map[string]func(string, string, string) (*tls.Config, error){"Server": Server, "Client": Client, "Peer": Peer} {
			_, err := build(c.cert, c.key, c.ca)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%s(%s, %s, %s): %v, want it to name %q", name, c.cert, c.key, c.ca, err, w)
				}
			}
		}
	}
}
