package authconn

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// StreamLayer is a raft.StreamLayer over authenticated connections, the counterpart of
// raft's TCPStreamLayer: give it to raft.NewNetworkTransportWithConfig.
type StreamLayer struct {
	*Listener
	advertise net.Addr
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer serves raft on l. advertise is the address other servers dial, when
// it is not l's (nil: l's).
func NewStreamLayer(l *Listener, advertise net.Addr) *StreamLayer {
	return &StreamLayer{Listener: l, advertise: advertise}
}

// Dial connects to another server; timeout bounds the connection and its handshake.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c := s.cfg
	if timeout > 0 {
		c.Timeout = timeout
	}
	return c.Dial(context.Background(), string(address))
}

// Addr is the address other servers reach this one at.
func (s *StreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}
