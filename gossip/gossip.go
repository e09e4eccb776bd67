package gossip

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a member.
type Config struct {
	Name      string // member name: the coordinator's or node's ID
	Bind      string // host:port to listen on (TCP and UDP); port 0 picks one
	Advertise string // host:port others reach it at; default the bound address (with Bind's port 0, the bound port)
	Key       []byte // 32 bytes: clusterkey.Secret.Derive(clusterkey.Gossip)
	Meta      Meta
	Profile   string      // ProfileLAN (the default) or ProfileLocal
	Logger    *log.Logger // memberlist's and this package's logs; nil: discarded
}

// Gossip is this process's membership in the cluster's memberlist: the real
// Membership.
type Gossip struct {
	ml     *memberlist.Memberlist
	view   *view
	local  *localMeta
	prof   profile
	logger *log.Logger

	stop     chan struct{}
	checking sync.WaitGroup
	mu       sync.Mutex // orders Leave and Shutdown
	down     bool
}

// Start creates the member, listening on cfg.Bind. It knows only itself until Join.
func Start(cfg Config) (*Gossip, error) {
	if cfg.Name == "" {
		return nil, errors.New("gossip: config: Name is empty")
	}
	if len(cfg.Key) != 32 {
		return nil, fmt.Errorf("gossip: config: Key is %d bytes, want 32 (clusterkey.Secret.Derive(clusterkey.Gossip))", len(cfg.Key))
	}
	prof, err := newProfile(cfg.Profile)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	local := &localMeta{}
	if err := local.set(cfg.Meta); err != nil {
		return nil, err
	}
	c := prof.ml
	c.Name = cfg.Name
	c.Logger = logger
	if c.BindAddr, c.BindPort, err = splitIPPort("Bind", cfg.Bind); err != nil {
		return nil, err
	}
	c.AdvertisePort = c.BindPort // with port 0, memberlist advertises the one it bound
	if cfg.Advertise != "" {
		var port int
		if c.AdvertiseAddr, port, err = splitIPPort("Advertise", cfg.Advertise); err != nil {
			return nil, err
		}
		if port != 0 {
			c.AdvertisePort = port
		}
	}
	if c.Keyring, err = memberlist.NewKeyring(nil, cfg.Key); err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	g := &Gossip{view: newView(logger, c.GossipToTheDeadTime), local: local, prof: prof, logger: logger, stop: make(chan struct{})}
	c.Delegate = local
	c.Events = g.view
	if g.ml, err = memberlist.Create(c); err != nil {
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.Bind, err)
	}
	g.checking.Add(1)
	go g.check()
	return g, nil
}

func splitIPPort(field, hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: config: %s %q: %w", field, hostport, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: config: %s %q: bad port", field, hostport)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("gossip: config: %s %q: the host must be an IP address", field, hostport)
	}
	return host, int(port), nil
}

// Join contacts the members at addrs (host:port) and merges their view of the cluster
// into ours. It returns how many it reached; the error says why the others failed.
func (g *Gossip) Join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err != nil {
		err = fmt.Errorf("gossip: join: %w", err)
	}
	return n, err
}

// Members lists every member this process knows, itself included, sorted by name.
func (g *Gossip) Members() []Member { return g.view.list() }

// Changes is signalled (coalesced) whenever what Members returns changes.
func (g *Gossip) Changes() <-chan struct{} { return g.view.changes }

// Addr is the address other members reach this one at.
func (g *Gossip) Addr() string { return g.ml.LocalNode().Address() }

// SetMeta replaces this member's metadata and broadcasts it. The error says when m is
// too large, or when the broadcast did not go out within the profile's TCP timeout
// (the new metadata is still set, and spreads with the next gossip).
func (g *Gossip) SetMeta(m Meta) error {
	if err := g.local.set(m); err != nil {
		return err
	}
	if err := g.ml.UpdateNode(g.prof.ml.TCPTimeout); err != nil {
		return fmt.Errorf("gossip: meta set, not yet broadcast: %w", err)
	}
	return nil
}

// Leave tells the others this member is leaving, so that they list it as left rather
// than dead, waiting at most timeout for the news to go out. Call Shutdown after it.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return errors.New("gossip: leave after shutdown")
	}
	deadline := time.Now().Add(timeout)
	g.local.leave()
	if err := g.ml.UpdateNode(timeout); err != nil {
		g.logger.Printf("[WARN] gossip: leaving: %v", err)
	}
	// memberlist reads a zero timeout as "wait for ever".
	if err := g.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops the member without telling the others, who will find it dead. It is
// safe to call more than once.
func (g *Gossip) Shutdown() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return nil
	}
	g.down = true
	close(g.stop)
	g.checking.Wait()
	return g.ml.Shutdown()
}

// localMeta is this member's metadata as memberlist asks for it (memberlist.Delegate;
// the user-message parts of that interface are unused).
type localMeta struct {
	mu      sync.Mutex
	meta    Meta
	leaving bool
	wire    []byte
}

// set replaces the metadata, refusing any that would not fit once marked as leaving.
func (l *localMeta) set(m Meta) error {
	if _, err := encodeMeta(m, true); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.meta = m
	l.wire, _ = encodeMeta(m, l.leaving)
	return nil
}

func (l *localMeta) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaving = true
	l.wire, _ = encodeMeta(l.meta, true)
}

func (l *localMeta) NodeMeta(limit int) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wire
}

func (l *localMeta) NotifyMsg([]byte)                           {}
func (l *localMeta) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (l *localMeta) LocalState(join bool) []byte                { return nil }
func (l *localMeta) MergeRemoteState(buf []byte, join bool)     {}
