// Package tlsconfig builds mutual-TLS configurations from PEM files (--tls-cert,
// --tls-key, --tls-ca): each end shows a certificate and accepts only peers whose
// certificate the CA file signs, TLS 1.3 at least. It also issues certificates
// (issue.go) for tests and for `bertnode certs`, which makes a CA to try TLS locally.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"
)

// Server is the configuration of an end that accepts: it shows certFile and requires a
// client certificate signed by caFile.
func Server(certFile, keyFile, caFile string) (*tls.Config, error) {
	c, pool, err := load(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	c.ClientCAs = pool
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c, nil
}

// Client is the configuration of an end that dials: it shows certFile and trusts only
// servers whose certificate caFile signs.
func Client(certFile, keyFile, caFile string) (*tls.Config, error) {
	c, pool, err := load(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	c.RootCAs = pool
	return c, nil
}

// Peer is the configuration of an end that both dials and accepts with one certificate,
// as raft servers and ring nodes do: Server and Client in one.
func Peer(certFile, keyFile, caFile string) (*tls.Config, error) {
	c, err := Server(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	c.RootCAs = c.ClientCAs
	return c, nil
}

func load(certFile, keyFile, caFile string) (*tls.Config, *x509.CertPool, error) {
	certPEM, err := readPEM(certFile, "CERTIFICATE")
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := readPEM(keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: %s with %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil { // X509KeyPair leaves it nil under GODEBUG=x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("tlsconfig: %s: %w", certFile, err)
		}
	}
	if now := time.Now(); now.After(pair.Leaf.NotAfter) || now.Before(pair.Leaf.NotBefore) {
		return nil, nil, fmt.Errorf("tlsconfig: %s: the certificate is valid from %s to %s only", certFile,
			pair.Leaf.NotBefore.Format(time.RFC3339), pair.Leaf.NotAfter.Format(time.RFC3339))
	}
	caPEM, err := readPEM(caFile, "CERTIFICATE")
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("tlsconfig: %s: no readable CA certificate", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}, pool, nil
}

// readPEM reads file and checks that it holds a PEM block whose type ends in kind
// ("CERTIFICATE"; "PRIVATE KEY" matches the PKCS #8, EC and RSA forms).
func readPEM(file, kind string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("tlsconfig: no %s file given", strings.ToLower(kind))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: %w", err)
	}
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, fmt.Errorf("tlsconfig: %s: no PEM %s block", file, kind)
		}
		if strings.HasSuffix(block.Type, kind) {
			return b, nil
		}
	}
}
