// Package clusterkey is the cluster secret: one random value that authenticates every
// connection of a cluster (API, gossip, ring, raft). Each use gets its own key derived
// from it, so a key seen by one layer (say a bearer token in a log) cannot open another.
package clusterkey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Size is the secret's length in bytes.
const Size = 32

const prefix = "bn1:"

// Env is the environment variable a process reads its secret from when no file is named.
const Env = "BERTNODE_SECRET"

// Secret is a cluster secret.
type Secret []byte

// Generate makes a new secret.
func Generate() (Secret, error) {
	s := make(Secret, Size)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	return s, nil
}

// String is the secret's text form, "bn1:" and unpadded base64url.
func (s Secret) String() string { return prefix + base64.RawURLEncoding.EncodeToString(s) }

// Parse reads the text form; surrounding white space is ignored.
func Parse(text string) (Secret, error) {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, prefix) {
		return nil, errors.New("cluster secret: want bn1:<base64url> (make one with bertnode keygen)")
	}
	b, err := base64.RawURLEncoding.DecodeString(t[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	if len(b) != Size {
		return nil, fmt.Errorf("cluster secret: %d bytes, want %d", len(b), Size)
	}
	return b, nil
}

// Load reads the secret from file when it is not empty, else from $BERTNODE_SECRET.
func Load(file string) (Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster secret: %w", err)
		}
		s, err := Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return s, nil
	}
	if v := os.Getenv(Env); v != "" {
		s, err := Parse(v)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", Env, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("cluster secret: none given: use --secret-file or set $%s (bertnode keygen makes one)", Env)
}

// The purposes keys are derived for.
const (
	API = "api"
	// APIRead is the read-only API token's: GETs of the catalog and /metrics.
	APIRead = "api-read"
	Gossip  = "gossip"
	Ring    = "ring"
	Raft    = "raft"
)

// Derive is HMAC-SHA256(secret, "bertnode/"+purpose): 32 bytes.
func (s Secret) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, s)
	m.Write([]byte("bertnode/" + purpose))
	return m.Sum(nil)
}

// Token is the API bearer token.
func (s Secret) Token() string { return hex.EncodeToString(s.Derive(API)) }

// ReadToken is the read-only API bearer token: for monitoring (a Prometheus scrape, a
// dashboard), which then holds no key that can change the cluster.
func (s Secret) ReadToken() string { return hex.EncodeToString(s.Derive(APIRead)) }
