package allreduce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as the rank process the fault tests start and kill: with
// BNR_HELPER_RANK set, the test binary joins the ring described by the environment on
// the listener it inherits as fd 3 and reduces until it fails.
func TestMain(m *testing.M) {
	if os.Getenv("BNR_HELPER_RANK") != "" {
		os.Exit(helperRank())
	}
	os.Exit(m.Run())
}

func helperRank() int {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Println("listener:", err)
		return 2
	}
	rank, _ := strconv.Atoi(os.Getenv("BNR_HELPER_RANK"))
	gen, _ := strconv.Atoi(os.Getenv("BNR_HELPER_GEN"))
	size, _ := strconv.Atoi(os.Getenv("BNR_HELPER_SIZE"))
	r, err := New(context.Background(), Config{Peers: strings.Split(os.Getenv("BNR_HELPER_PEERS"), ","), Rank: rank,
		Generation: uint32(gen), Secret: testSecret, Listener: ln.(*net.TCPListener), Timeout: faultTimeout,
		SetupTimeout: 10 * time.Second, NoSharedMemory: os.Getenv("BNR_HELPER_SHM") == ""})
	if err != nil {
		fmt.Println("new:", err)
		return 3
	}
	buf := make([]float32, size)
	for i := 0; ; i++ {
		fill(buf, rank)
		if err := r.AllReduce(context.Background(), buf, OpSum); err != nil {
			fmt.Println("allreduce:", err)
			return 4
		}
		fmt.Printf("op %d %08x\n", i, checksum(buf))
	}
}

// checksum is a CRC of a buffer's bits, for a child rank to report its result.
func checksum(buf []float32) uint32 { return crc32.ChecksumIEEE(f32bytes(buf)) }

const faultTimeout = 1 * time.Second

func fill(buf []float32, rank int) {
	for i := range buf {
		buf[i] = float32(i%1024) + float32(rank)
	}
}

// startHelper runs rank `rank` of the ring in a child process on ln, through shared
// memory if shm.
func startHelper(t *testing.T, ln Listener, addrs []string, rank int, gen uint32, size int, shm bool) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BNR_HELPER_RANK="+strconv.Itoa(rank), "BNR_HELPER_GEN="+strconv.Itoa(int(gen)),
		"BNR_HELPER_SIZE="+strconv.Itoa(size), "BNR_HELPER_PEERS="+strings.Join(addrs, ","))
	if shm {
		cmd.Env = append(cmd.Env, "BNR_HELPER_SHM=1")
	}
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

// survivors runs rings[i] in a loop of all-reduces until each fails, and reports when.
type failure struct {
	err error
	at  time.Time
}

func reduceUntilFailure(rings []*Ring, size int) []chan failure {
	out := make([]chan failure, len(rings))
	for i, r := range rings {
		out[i] = make(chan failure, 1)
		go func() {
			buf := make([]float32, size)
			for {
				fill(buf, r.Rank())
				if err := r.AllReduce(context.Background(), buf, OpSum); err != nil {
					out[i] <- failure{err, time.Now()}
					return
				}
			}
		}()
	}
	return out
}

// faultRing builds a ring of n ranks whose last rank is a child process, over TCP or
// through shared memory, and sets the others reducing until they fail. It returns once
// the child has completed two operations.
func faultRing(t *testing.T, n, size int, shm bool) ([]Listener, []string, []*Ring, []chan failure, *exec.Cmd) {
	lns, addrs := listenTCP(t, n)
	cmd, out := startHelper(t, lns[n-1], addrs, n-1, 1, size, shm)
	rings := buildRings(t, lns[:n-1], addrs, 1, func(c *Config) { c.Timeout, c.NoSharedMemory = faultTimeout, !shm })
	checkTransport(t, rings, shm)
	fails := reduceUntilFailure(rings, size)
	return lns, addrs, rings, fails, waitOps(t, cmd, out, 2)
}

func waitOps(t *testing.T, cmd *exec.Cmd, out *bufio.Scanner, ops int) *exec.Cmd {
	t.Helper()
	for seen := 0; seen < ops; {
		if !out.Scan() {
			t.Fatalf("helper rank exited before %d operations", ops)
		}
		if !strings.HasPrefix(out.Text(), "op ") {
			t.Fatalf("helper rank: %s", out.Text())
		}
		seen++
	}
	go func() {
		for out.Scan() {
		}
	}()
	return cmd
}

// checkFailures asserts every in-process rank failed within limit of the fault with a
// typed error that names a neighbour.
func checkFailures(t *testing.T, fails []chan failure, fault time.Time, limit time.Duration, causes ...error) {
	t.Helper()
	for i, ch := range fails {
		select {
		case f := <-ch:
			took := f.at.Sub(fault)
			var pe *PeerError
			typed := false
			for _, c := range causes {
				typed = typed || errors.Is(f.err, c)
			}
			if !typed || !errors.As(f.err, &pe) {
				t.Errorf("rank %d: error %v is not a PeerError wrapping %v", i, f.err, causes)
			}
			if took > limit {
				t.Errorf("rank %d failed %v after the fault, want within %v", i, took, limit)
			}
			t.Logf("rank %d after %v: %v", i, took.Round(time.Millisecond), f.err)
		case <-time.After(limit + 5*time.Second):
			t.Fatalf("rank %d still running %v after the fault", i, limit+5*time.Second)
		}
	}
}

// TestKillRankMidOperation: SIGKILL one rank process while the ring is reducing; the
// other ranks fail with ErrPeerLost within the timeout, rebuild a ring of the
// survivors at generation 2 and reduce exactly; the killed rank, restarted with its
// stale generation-1 membership, is turned away.
func TestKillRankMidOperation(t *testing.T) {
	forTransports(t, testKillRankMidOperation)
}

func testKillRankMidOperation(t *testing.T, shm bool) {
	const n, size = 4, 2 << 20
	lns, addrs, _, fails, cmd := faultRing(t, n, size, shm)
	time.Sleep(30 * time.Millisecond)
	fault := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	checkFailures(t, fails, fault, faultTimeout, ErrPeerLost, ErrTimeout)

	// The survivors rebuild as generation 2. While rank 0 is accepting, the old rank 3
	// comes back believing in generation 1 and dials it: rank 0 turns it away and it
	// learns that it is stale. Then ranks 1 and 2 join and the new ring reduces exactly.
	survivors, saddrs := lns[:n-1], addrs[:n-1]
	gen2 := make([]*Ring, n-1)
	errs := make([]error, n-1)
	var wg sync.WaitGroup
	join := func(i int) {
		wg.Go(func() {
			gen2[i], errs[i] = New(context.Background(), Config{Peers: saddrs, Rank: i, Generation: 2,
				Secret: testSecret, Listener: survivors[i], Timeout: faultTimeout, SetupTimeout: 10 * time.Second,
				NoSharedMemory: !shm})
		})
	}
	join(0)
	lnStale, _ := listenTCP(t, 1)
	stale, out := startHelper(t, lnStale[0], addrs, n-1, 1, size, shm)
	var lines []string
	for out.Scan() {
		lines = append(lines, out.Text())
	}
	err := stale.Wait()
	if code := stale.ProcessState.ExitCode(); code != 3 || !strings.Contains(strings.Join(lines, "\n"), ErrStaleGeneration.Error()) {
		t.Errorf("stale rank: exit %d (%v), output %q; want exit 3 and %q", code, err, lines, ErrStaleGeneration)
	}
	join(1)
	join(2)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("generation 2, rank %d: %v", i, err)
		}
		defer gen2[i].Close()
	}
	checkTransport(t, gen2, shm)
	checkExact(t, rand.New(rand.NewPCG(2, 1)), gen2, 100003, OpSum)
}

// TestStallRankMidOperation: SIGSTOP one rank process mid-operation; it neither sends
// nor reads, nor closes anything, so only the timeout can notice. Every other rank
// must fail with a typed error within the timeout (plus scheduling slack), then the
// survivors rebuild and reduce.
func TestStallRankMidOperation(t *testing.T) {
	forTransports(t, testStallRankMidOperation)
}

func testStallRankMidOperation(t *testing.T, shm bool) {
	const n, size = 3, 2 << 20
	_, addrs, rings, fails, cmd := faultRing(t, n, size, shm)
	time.Sleep(30 * time.Millisecond)
	fault := time.Now()
	cmd.Process.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT) })
	checkFailures(t, fails, fault, faultTimeout+700*time.Millisecond, ErrTimeout, ErrPeerLost)

	next := make([]*Ring, n-1)
	errs := make([]error, n-1)
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Go(func() { next[i], errs[i] = r.Rebuild(context.Background(), addrs[:n-1], i) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: Rebuild: %v", i, err)
		}
		defer next[i].Close()
		if next[i].Generation() != 2 {
			t.Fatalf("rank %d rebuilt generation %d, want 2", i, next[i].Generation())
		}
	}
	checkTransport(t, next, shm)
	checkExact(t, rand.New(rand.NewPCG(3, 1)), next, 100003, OpSum)
}

// forTransports runs a test over TCP and through shared memory.
func forTransports(t *testing.T, test func(t *testing.T, shm bool)) {
	t.Run("tcp", func(t *testing.T) { test(t, false) })
	t.Run("shm", func(t *testing.T) { test(t, true) })
}

func checkTransport(t *testing.T, rings []*Ring, shm bool) {
	t.Helper()
	want := map[bool]string{false: "tcp", true: "shm"}[shm]
	for i, r := range rings {
		if s := r.Stats(); s.Transport != want {
			t.Fatalf("rank %d: transport %s (%s), want %s", i, s.Transport, s.TransportNote, want)
		}
	}
}

// TestCancelEndsAHandshakeThePeerNeverAnswers: the next rank's listener is open but
// nothing accepts on it (a node whose session ended: its job was cancelled while this
// one dialled), so the kernel completes the connection and the hello is never answered.
// Cancelling ctx must end New at once; it waited for the ring's Timeout (a node stuck
// 10 s in a cancelled job's ring).
func TestCancelEndsAHandshakeThePeerNeverAnswers(t *testing.T) {
	mine, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never accepts
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err = New(ctx, Config{Peers: []string{mine.Addr().String(), silent.Addr().String()}, Rank: 0, Generation: 1,
		Secret: testSecret, Listener: mine.(*net.TCPListener), Timeout: 20 * time.Second, SetupTimeout: 30 * time.Second})
	if took := time.Since(start); err == nil || took > 3*time.Second {
		t.Fatalf("New with a silent peer, cancelled after 300ms: returned after %v: %v", took, err)
	}
}
