package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

// stateDir holds a record per live lab: bnl<id>.json, what it made, and bnl<id>.lock,
// which the lab's process holds an flock on for the lab's life. The kernel drops the
// flock when the process dies however it dies, so a record whose lock can be taken
// belongs to a crashed run, and its resources can go; no clock or PID is guessed at.
// /run is a tmpfs: the records vanish on reboot with the namespaces they describe.
const stateDir = "/run/netlab"

type record struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	PID     int          `json:"pid"`
	Created time.Time    `json:"created"`
	Bridge  string       `json:"bridge"`
	Subnet  string       `json:"subnet"`
	Hosts   []hostRecord `json:"hosts"`
}

type hostRecord struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	Link  string `json:"link"` // host side of the veth pair; the namespace side is eth0
}

// registration is a lab's record, saved before each thing it names is made, and the
// flock that marks the lab alive.
type registration struct {
	rec  record
	lock *os.File
}

func (r *registration) path(ext string) string {
	return filepath.Join(stateDir, prefix+r.rec.ID+ext)
}

func (r *registration) save() error {
	b, err := json.MarshalIndent(r.rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(r.path(".json"), append(b, '\n'), 0o644)
}

// lockRegistry serialises New across processes: the leftover sweep, the choice of a
// free subnet and the bridge address that makes it taken happen under one flock.
func lockRegistry() (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "registry.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netlab: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// register picks an unused ID, takes its lock and saves the record; called with the
// registry locked.
func register(name string, subnet netip.Prefix) (*registration, error) {
	for range 100 {
		b := make([]byte, 2)
		rand.Read(b)
		id := hex.EncodeToString(b)
		if _, err := net.InterfaceByName(prefix + id); err == nil {
			continue // a bridge of a lab whose record is gone: not ours to reuse
		}
		r := &registration{rec: record{ID: id, Name: name, PID: os.Getpid(), Created: time.Now().UTC(),
			Bridge: prefix + id, Subnet: subnet.String()}}
		f, err := os.OpenFile(r.path(".lock"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlab: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return nil, fmt.Errorf("netlab: lock %s: %w", f.Name(), err)
		}
		r.lock = f
		if err := r.save(); err != nil {
			return nil, errors.Join(err, r.remove())
		}
		return r, nil
	}
	return nil, errors.New("netlab: no free lab ID after 100 tries")
}

// removeLeftovers removes the labs whose process died without closing them; called
// with the registry locked.
func removeLeftovers() error {
	locks, err := filepath.Glob(filepath.Join(stateDir, prefix+"*.lock"))
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range locks {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue // removed meanwhile by its owner
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // alive
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), prefix), ".lock")
		r := &registration{rec: record{ID: id, Bridge: prefix + id}, lock: f}
		if b, err := os.ReadFile(r.path(".json")); err == nil {
			if err := json.Unmarshal(b, &r.rec); err != nil {
				errs = append(errs, fmt.Errorf("netlab: leftover record %s: %w", r.path(".json"), err))
				f.Close()
				continue
			}
		}
		// else the owner died between taking the lock and saving the record: nothing
		// but perhaps the bridge was made.
		if err := r.remove(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: leftover lab %s (pid %d, %s): %w", id, r.rec.PID, r.rec.Created, err))
		}
	}
	return errors.Join(errs...)
}

// remove kills what still runs in the record's namespaces and deletes its links,
// namespaces and bridge, then the record and its lock. What is already gone is skipped.
func (r *registration) remove() error {
	var errs []error
	for i := len(r.rec.Hosts) - 1; i >= 0; i-- {
		h := r.rec.Hosts[i]
		if _, err := os.Stat(netnsPath(h.Netns)); err == nil {
			errs = append(errs, killNetnsProcesses(h.Netns))
		}
		// deleting one end of a veth pair deletes the other
		if _, err := net.InterfaceByName(h.Link); err == nil {
			errs = append(errs, run("ip", "link", "del", h.Link))
		}
		if _, err := os.Stat(netnsPath(h.Netns)); err == nil {
			errs = append(errs, run("ip", "netns", "del", h.Netns))
		}
	}
	if _, err := net.InterfaceByName(r.rec.Bridge); err == nil {
		errs = append(errs, run("ip", "link", "del", r.rec.Bridge))
	}
	if err := errors.Join(errs...); err != nil {
		return err // keep the record, so a later sweep tries again
	}
	for _, ext := range []string{".json", ".lock"} {
		if err := os.Remove(r.path(ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	r.lock.Close()
	return errors.Join(errs...)
}

func netnsPath(ns string) string { return filepath.Join("/run/netns", ns) }

// killNetnsProcesses SIGKILLs the processes whose network namespace is ns: only a
// lab's Command or Do puts them there, and a namespace lives as long as they do.
func killNetnsProcesses(ns string) error {
	out, err := output("ip", "netns", "pids", ns)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("netlab: kill %d in %s: %w", pid, ns, err)
		}
	}
	return nil
}
