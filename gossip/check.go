package gossip

import (
	"net"
	"sync"
	"time"
)

// check pings every member the view holds alive or suspect, each profile.checkEvery,
// until Shutdown, and drops the dead and left that memberlist forgets.
//
// Why: memberlist suspects a member that stops answering its probes, and declares it
// dead if no refutation comes within the suspicion timeout, but it does not say so
// until the death: its events are join, update and leave, and the State of the Nodes it
// hands out is never set (hashicorp/memberlist#266). So Gossip checks the members
// itself with memberlist's own ping (encrypted UDP to the member's memberlist, which
// answers only to its name): missesToSuspect misses in a row make a member suspect,
// an answer makes it alive again. A suspect is thus "this process cannot reach it";
// dead and left still come from memberlist alone.
func (g *Gossip) check() {
	defer g.checking.Done()
	t := time.NewTicker(g.prof.checkEvery)
	defer t.Stop()
	self := g.ml.LocalNode().Name
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		g.view.forget(time.Now())
		var wg sync.WaitGroup
		for _, m := range g.view.toCheck(self) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.view.checked(m, g.ping(m))
			}()
		}
		wg.Wait()
	}
}

func (g *Gossip) ping(m Member) bool {
	addr, err := net.ResolveUDPAddr("udp", m.Addr)
	if err != nil {
		g.logger.Printf("[WARN] gossip: member %s: address %q: %v", m.Name, m.Addr, err)
		return false
	}
	_, err = g.ml.Ping(m.Name, addr)
	return err == nil
}
