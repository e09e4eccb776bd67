package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The clients of a load can run in another process (RunIn), so that the CPU time this
// process measures is the server's alone. The child is `bertnode bench load --json`
// (Child); it tells the parent on its stdout when the measured window begins and ends,
// then prints its Result.
const (
	markBegin = "window begins"
	markEnd   = "window ends"
)

// Child runs the load o for a parent's RunIn, writing the window's marks and then the
// Result as JSON to w.
func Child(ctx context.Context, o Options, w io.Writer) error {
	var mu sync.Mutex
	o.Window = func(begin bool) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, map[bool]string{true: markBegin, false: markEnd}[begin])
	}
	res, err := Run(ctx, o)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(w).Encode(res)
}

// ChildArgs are the flags RunIn passes the child after argv; bodiesFile holds o's
// bodies, one per line.
func ChildArgs(o Options, bodiesFile string) []string {
	return []string{"--json", "--url", o.URL, "--bodies", bodiesFile, "--concurrency", strconv.Itoa(o.Concurrency),
		"--warmup", o.Warmup.String(), "--duration", o.Duration.String()}
}

// RunIn applies the load o from the process argv (followed by ChildArgs) and returns its
// Result with CPU set to this process's CPU time in the child's measured window, and
// ClientCPU to the child's.
func RunIn(ctx context.Context, argv []string, o Options) (Result, error) {
	f, err := os.CreateTemp("", "bertnode-load-bodies-")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriter(f)
	for _, b := range o.Bodies {
		if bytes.ContainsAny(b, "\r\n") {
			f.Close()
			return Result{}, fmt.Errorf("loadtest: a body holds a line break: bodies are sent one per line")
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return Result{}, err
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	cmd := exec.CommandContext(ctx, argv[0], append(append([]string{}, argv[1:]...), ChildArgs(o, f.Name())...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	var (
		res        Result
		begin, end time.Duration
		parseErr   error
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		switch line := sc.Text(); line {
		case markBegin:
			begin = CPUTime()
		case markEnd:
			end = CPUTime()
		default:
			if parseErr == nil {
				parseErr = json.Unmarshal([]byte(line), &res)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return Result{}, fmt.Errorf("loadtest: the clients' process: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	switch {
	case parseErr != nil:
		return Result{}, fmt.Errorf("loadtest: the clients' result: %v", parseErr)
	case begin == 0 || end == 0:
		return Result{}, fmt.Errorf("loadtest: the clients' process did not mark its window")
	}
	res.ClientCPU, res.CPU = res.CPU, end-begin
	return res, nil
}

// ReadBodies reads request bodies, one per line (empty lines skipped).
func ReadBodies(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no request bodies", path)
	}
	return out, nil
}
