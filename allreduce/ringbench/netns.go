package ringbench

import (
	"errors"
	"fmt"
	"net"

	"github.com/bertnode/bertnode/internal/netlab"
)

// rankHosts makes a lab with one host per rank, each link capped at o.LinkRate when
// set; the caller closes the lab.
func rankHosts(o Options) (*netlab.Lab, []*netlab.Host, error) {
	lab, err := netlab.New("ringbench")
	if err != nil {
		return nil, nil, err
	}
	hosts := make([]*netlab.Host, o.Ranks)
	for i := range hosts {
		h, err := lab.AddHost(fmt.Sprintf("rank%d", i))
		if err == nil && o.LinkRate > 0 {
			err = h.Limit(o.LinkRate, o.LinkBurst)
		}
		if err != nil {
			return nil, nil, errors.Join(err, lab.Close())
		}
		hosts[i] = h
	}
	return lab, hosts, nil
}

// listen opens rank i's listener: on loopback, or on its host's address in its
// namespace, where the rank process inherits it.
func listen(hosts []*netlab.Host, i int) (*net.TCPListener, error) {
	if hosts == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return ln.(*net.TCPListener), nil
	}
	var ln net.Listener
	err := hosts[i].Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(hosts[i].IP().String(), "0"))
		return err
	})
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}
