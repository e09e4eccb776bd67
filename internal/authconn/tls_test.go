package authconn

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bertnode/bertnode/internal/tlsconfig"
)

// peerTLS issues a certificate for 127.0.0.1 from ca and returns its Peer configuration.
func peerTLS(t *testing.T, ca *tlsconfig.CA, name string) *tls.Config {
	t.Helper()
	pair, err := ca.Issue(name, []string{"127.0.0.1"}, tlsconfig.ServerAndClient, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")}
	for i, b := range [][]byte{pair.CertPEM, pair.KeyPEM, ca.CertPEM} {
		if err := os.WriteFile(files[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tlsconfig.Peer(files[0], files[1], files[2])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSWrapsTheHandshake(t *testing.T) {
	key := newKey(t)
	ca, err := tlsconfig.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, logs := listen(t, Config{Key: key, TLS: peerTLS(t, ca, "server")})
	_, s := connect(t, l, key, peerTLS(t, ca, "client"))
	if st := s.(*tls.Conn).ConnectionState(); st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "client" {
		t.Fatalf("TLS version %x, client %q", st.Version, st.PeerCertificates[0].Subject.CommonName)
	}

	// A certificate from another CA fails at TLS, the right key notwithstanding.
	rogue, err := tlsconfig.NewCA("rogue CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Config{Key: key, TLS: peerTLS(t, rogue, "rogue")}).Dial(testCtx(t), l.Addr().String()); !errors.Is(err, ErrAuth) {
		t.Fatalf("certificate from another CA: %v", err)
	}
	waitLog(t, logs, "TLS")
	// The right certificate with another key fails at the exchange, inside TLS.
	if _, err := (Config{Key: newKey(t), TLS: peerTLS(t, ca, "client")}).Dial(testCtx(t), l.Addr().String()); !errors.Is(err, ErrAuth) {
		t.Fatalf("another key over TLS: %v", err)
	}
	waitLog(t, logs, "the dialer's proof of the key is wrong")
}
