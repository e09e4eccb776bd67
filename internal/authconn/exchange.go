// Package authconn authenticates TCP connections with a shared key: before a
// connection is handed over, both ends prove they hold the key (a challenge-response
// over fresh nonces, HMAC-SHA256), optionally inside mutual TLS. The raft transport
// uses it (StreamLayer); Exchange, the challenge-response alone, can serve any
// protocol that has its own hello to authenticate.
//
// The proof authenticates the peer when the connection opens; it neither encrypts nor
// protects the bytes that follow. Against an active attacker on the path, add TLS.
package authconn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Role is which end of the connection one is.
type Role string

const (
	Dialer   Role = "dialer"
	Acceptor Role = "acceptor"
)

var (
	// ErrAuth: the peer's proof is wrong: it holds another key, or TLS failed.
	ErrAuth = errors.New("authentication failed")
	// ErrProtocol: the peer does not speak this handshake.
	ErrProtocol = errors.New("not a bertnode handshake")
)

// The exchange, dialer D to acceptor A:
//
//	D -> A  msgD = magic | version | nonceD | helloD
//	A -> D  msgA = magic | version | nonceA | helloA,  proof(acceptor)
//	D -> A  proof(dialer)
//
// proof(role) = HMAC-SHA256(key, len(label) | label | msgD | msgA | role). Each end
// checks the other's proof in constant time. The fresh nonces make every transcript
// new, so a recorded proof cannot be replayed; the role keeps one end's proof from
// being reflected back as the other's. The dialer sends its proof even when the
// acceptor's was wrong, so both ends see the mismatch rather than a dropped connection.
var magic = [4]byte{'b', 'n', 'a', 'c'}

const (
	version    = 1
	nonceSize  = 32
	headerSize = len(magic) + 1 + nonceSize
	proofSize  = sha256.Size
)

// Exchange runs the challenge-response on rw as role and returns the peer's hello.
// Both ends must pass hellos of the same length (nil for none); what they carry, say
// a protocol's parameters, is authenticated with the key, so the caller can trust the
// peer's hello once Exchange returns. label separates the uses of one key. rw should
// have a deadline: Exchange blocks on it. The error wraps ErrAuth, ErrProtocol or the
// I/O error.
func Exchange(rw io.ReadWriter, key []byte, label string, hello []byte, role Role) ([]byte, error) {
	mine := make([]byte, headerSize+len(hello))
	copy(mine, magic[:])
	mine[len(magic)] = version
	if _, err := rand.Read(mine[len(magic)+1 : headerSize]); err != nil {
		return nil, err
	}
	copy(mine[headerSize:], hello)
	peer := make([]byte, len(mine)+proofSize)
	peerMsg, peerProof := peer[:len(mine)], peer[len(mine):]

	switch role {
	case Dialer:
		if _, err := rw.Write(mine); err != nil {
			return nil, fmt.Errorf("sending the hello: %w", err)
		}
		if err := readMsg(rw, peer, "the acceptor's hello"); err != nil {
			return nil, err
		}
		_, werr := rw.Write(proof(key, label, mine, peerMsg, Dialer))
		if !hmac.Equal(peerProof, proof(key, label, mine, peerMsg, Acceptor)) {
			return nil, fmt.Errorf("%w: the acceptor's proof of the key is wrong (another cluster secret?)", ErrAuth)
		}
		if werr != nil {
			return nil, fmt.Errorf("sending the proof: %w", werr)
		}
	case Acceptor:
		if err := readMsg(rw, peerMsg, "the dialer's hello"); err != nil {
			return nil, err
		}
		if _, err := rw.Write(append(mine, proof(key, label, peerMsg, mine, Acceptor)...)); err != nil {
			return nil, fmt.Errorf("sending the hello: %w", err)
		}
		if _, err := io.ReadFull(rw, peerProof); err != nil {
			return nil, fmt.Errorf("reading the dialer's proof: %w", err)
		}
		if !hmac.Equal(peerProof, proof(key, label, peerMsg, mine, Dialer)) {
			return nil, fmt.Errorf("%w: the dialer's proof of the key is wrong (another cluster secret?)", ErrAuth)
		}
	default:
		return nil, fmt.Errorf("authconn: role %q", role)
	}
	return peerMsg[headerSize:], nil
}

// readMsg fills buf from r, checking the magic and version as soon as they arrive, so
// that a peer speaking another protocol is told apart at once.
func readMsg(r io.Reader, buf []byte, what string) error {
	n := len(magic) + 1
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	if [4]byte(buf[:4]) != magic || buf[4] != version {
		return fmt.Errorf("%w (%s starts %q)", ErrProtocol, what, buf[:n])
	}
	if _, err := io.ReadFull(r, buf[n:]); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

func proof(key []byte, label string, msgD, msgA []byte, role Role) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(label))))
	m.Write([]byte(label))
	m.Write(msgD)
	m.Write(msgA)
	m.Write([]byte(role))
	return m.Sum(nil)
}
