package allreduce

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Setting up the shared-memory transport, after both ring connections have passed the
// handshake. Two messages go around the ring on those connections, starting at rank 0:
//
//  1. the offer: rank 0 creates the region (a memfd), writes a random nonce into it and
//     sends its pid, fd and the nonce. Each rank in turn checks that the sender is on
//     the same boot of the same host (boot_id) and that both ends of the connection
//     between them are in the same network namespace, opens the region through
//     /proc/<pid>/fd/<fd>, and checks the nonce in it: so it has really mapped rank 0's
//     region, not a file of the same name elsewhere. A rank that cannot, or has the
//     transport turned off, marks the offer declined, naming itself and why.
//  2. the verdict: when the offer is back at rank 0 (which checks the last link), every
//     rank has mapped the region or declined; rank 0 closes the fd (no name exists, so
//     a crash leaves nothing behind) and sends the verdict around.
//
// Declined, the ring uses TCP, and Stats says why. Only codec none goes through shared
// memory; the other codecs exchange nothing here.

const shmOfferSize = 88

var shmOfferMagic = [4]byte{'b', 'n', 'r', 's'}

// Why a ring declined shared memory.
const (
	declineNone = iota
	declineOff
	declineUnsupported
	declineIdentity
	declineHost
	declineNetns
	declineRegion
)

var declineText = [...]string{"", "turned off (Config.NoSharedMemory)", "not supported on this system",
	"cannot identify its host or network namespace", "on another host", "in another network namespace",
	"cannot map rank 0's region"}

type shmOffer struct {
	ok       bool
	reason   uint8
	rank     uint16 // the rank that declined
	boot     [16]byte
	dev, ino uint64 // the sender's end of the connection: its network namespace
	pid, fd  uint32
	size     uint64
	nonce    [32]byte
}

func (o *shmOffer) decline(rank, reason int) {
	if o.ok {
		o.ok, o.rank, o.reason = false, uint16(rank), uint8(reason)
	}
}

func (o *shmOffer) marshal() []byte {
	b := make([]byte, shmOfferSize)
	copy(b, shmOfferMagic[:])
	if o.ok {
		b[4] = 1
	}
	b[5] = o.reason
	binary.LittleEndian.PutUint16(b[6:], o.rank)
	copy(b[8:24], o.boot[:])
	binary.LittleEndian.PutUint64(b[24:], o.dev)
	binary.LittleEndian.PutUint64(b[32:], o.ino)
	binary.LittleEndian.PutUint32(b[40:], o.pid)
	binary.LittleEndian.PutUint32(b[44:], o.fd)
	binary.LittleEndian.PutUint64(b[48:], o.size)
	copy(b[56:88], o.nonce[:])
	return b
}

func parseOffer(b []byte) (shmOffer, error) {
	var o shmOffer
	if [4]byte(b[:4]) != shmOfferMagic || b[4] > 1 || int(b[5]) >= len(declineText) {
		return o, fmt.Errorf("%w: not a shared-memory offer", ErrProtocol)
	}
	o.ok, o.reason = b[4] == 1, b[5]
	o.rank = binary.LittleEndian.Uint16(b[6:])
	copy(o.boot[:], b[8:24])
	o.dev, o.ino = binary.LittleEndian.Uint64(b[24:]), binary.LittleEndian.Uint64(b[32:])
	o.pid, o.fd = binary.LittleEndian.Uint32(b[40:]), binary.LittleEndian.Uint32(b[44:])
	o.size = binary.LittleEndian.Uint64(b[48:])
	copy(o.nonce[:], b[56:88])
	return o, nil
}

func (r *Ring) sendOffer(o *shmOffer) error {
	if _, err := r.next.Write(o.marshal()); err != nil {
		return r.peerErr(r.nextRank(), ioCause(err))
	}
	return nil
}

func (r *Ring) recvOffer() (shmOffer, error) {
	b := make([]byte, shmOfferSize)
	if _, err := io.ReadFull(r.prev, b); err != nil {
		return shmOffer{}, r.peerErr(r.prevRank(), ioCause(err))
	}
	o, err := parseOffer(b)
	if err != nil {
		return o, r.peerErr(r.prevRank(), err)
	}
	return o, nil
}

// setupShm runs the exchange above and, if every rank agreed, switches r to the
// region. Errors are those of the connections (the ring cannot be built).
func (r *Ring) setupShm(ctx context.Context) (err error) {
	if r.cfg.Codec != CodecNone {
		return nil
	}
	dl := time.Now().Add(r.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	r.next.SetDeadline(dl)
	r.prev.SetDeadline(dl)
	defer r.next.SetDeadline(time.Time{})
	defer r.prev.SetDeadline(time.Time{})

	var mem []byte
	defer func() {
		if r.shm == nil && mem != nil {
			unmapRegion(mem)
		}
	}()
	boot, bootErr := bootID()
	dev, ino, nextErr := connNetns(r.next)
	pdev, pino, prevErr := connNetns(r.prev)
	var note error // this rank's own reason to decline, in detail
	local := func(o *shmOffer) {
		switch {
		case r.cfg.NoSharedMemory:
			o.decline(r.rank, declineOff)
		case !shmSupported:
			o.decline(r.rank, declineUnsupported)
		case bootErr != nil || nextErr != nil || prevErr != nil:
			note = errors.Join(bootErr, nextErr, prevErr)
			o.decline(r.rank, declineIdentity)
		}
	}
	// checkSender: the offer's sender is on this host, in the namespace of our end.
	checkSender := func(o *shmOffer, sender int) {
		switch {
		case !o.ok:
		case o.boot != boot:
			o.decline(sender, declineHost)
		case o.dev != pdev || o.ino != pino:
			o.decline(sender, declineNetns)
		}
	}
	var q int
	var verdict shmOffer
	if r.rank == 0 {
		o := shmOffer{ok: true}
		local(&o)
		fd := -1
		if o.ok {
			q = shmPiece(r.n, r.cfg.BucketElems)
			var pid int
			if mem, pid, fd, note = createRegion(shmSize(r.n, q)); note != nil {
				o.decline(0, declineRegion)
			} else {
				rand.Read(o.nonce[:])
				initHeader(mem, r.n, q, o.nonce)
				o.pid, o.fd, o.size = uint32(pid), uint32(fd), uint64(len(mem))
			}
		}
		o.boot, o.dev, o.ino = boot, dev, ino
		err := r.sendOffer(&o)
		if err == nil {
			verdict, err = r.recvOffer()
		}
		if fd >= 0 {
			closeFd(fd) // every rank has mapped the region or never will
		}
		if err != nil {
			return err
		}
		checkSender(&verdict, r.n-1)
		if err := r.sendOffer(&verdict); err != nil {
			return err
		}
	} else {
		o, err := r.recvOffer()
		if err != nil {
			return err
		}
		checkSender(&o, r.rank)
		local(&o)
		if o.ok {
			if mem, note = openRegion(int(o.pid), int(o.fd), int(o.size)); note == nil {
				q, note = checkHeader(mem, r.n, o.nonce)
			}
			if note != nil {
				o.decline(r.rank, declineRegion)
			}
		}
		o.boot, o.dev, o.ino = boot, dev, ino
		if err := r.sendOffer(&o); err != nil {
			return err
		}
		if verdict, err = r.recvOffer(); err != nil {
			return err
		}
		if r.nextRank() != 0 {
			if err := r.sendOffer(&verdict); err != nil {
				return err
			}
		}
	}
	if !verdict.ok {
		r.transportNote = fmt.Sprintf("shared memory declined: rank %d %s", verdict.rank, declineText[verdict.reason])
		if note != nil && int(verdict.rank) == r.rank {
			r.transportNote += ": " + note.Error()
		}
		return nil
	}
	r.shm = newShmRegion(mem, r.cfg.Peers, r.rank, q, r.cfg.Timeout)
	for _, w := range []struct {
		c    net.Conn
		rank int
	}{{r.next, r.nextRank()}, {r.prev, r.prevRank()}} {
		go r.watch(w.c, w.rank)
	}
	return nil
}

// watch reads the connection to a neighbour, on which nothing travels while the ring
// runs in shared memory: it returns only when the neighbour closes it (it failed, gave
// up, was closed or died: the kernel closes a killed process's sockets) or breaks the
// protocol.
func (r *Ring) watch(c net.Conn, rank int) {
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil {
		err = fmt.Errorf("%w: data on the connection of a shared-memory ring", ErrProtocol)
	} else {
		err = ioCause(err)
	}
	r.shm.lose(r.peerErr(rank, err))
}
