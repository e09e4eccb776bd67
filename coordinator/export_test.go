package coordinator

import "github.com/hashicorp/raft"

// Raft is the member's raft, for tests that look under the API.
func (s *Server) Raft() *raft.Raft { return s.raft }

// Kill stops the member as a crash would: no leadership transfer.
func (s *Server) Kill() error { return s.close(false) }

// SetConsistent overrides what lead's barrier set: false makes the leader act as one
// just elected, whose state may lack its predecessor's last entries.
func (s *Server) SetConsistent(ok bool) {
	s.consistent.Store(ok)
	s.changes.notify()
}

// PlayUnversioned makes the member of cfg play a build before protocol versions: it
// records no protocol, its own or a joining member's, as such a leader dropped the field.
func PlayUnversioned(cfg *Config) { cfg.unversioned = true }
