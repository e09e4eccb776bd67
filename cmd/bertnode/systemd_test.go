package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const systemdDir = "../../examples/systemd"

// The example systemd units start bertnode with a command line this build takes: each
// ExecStart, its variables from the example environment file expanded as systemd does
// (${VAR} within a word, $VAR alone split at spaces), names a command whose flags and
// arguments parse; the coordinator's also with --bootstrap for a first member. Where
// systemd-analyze is installed, it verifies the units too.
func TestSystemdUnitsParse(t *testing.T) {
	env := map[string]string{}
	b, err := os.ReadFile(filepath.Join(systemdDir, "bertnode.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	for _, tc := range []struct{ unit, start string }{
		{"bertnode-coordinator.service", ""}, {"bertnode-coordinator.service", "--bootstrap"}, {"bertnode-node.service", ""},
	} {
		text, err := os.ReadFile(filepath.Join(systemdDir, tc.unit))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(text)
		if m == nil {
			t.Fatalf("%s: no ExecStart", tc.unit)
		}
		if tc.start != "" {
			env["COORDINATOR_START"] = tc.start
		}
		var args []string
		for _, w := range strings.Fields(string(m[1])) {
			if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
				v, ok := env[w[1:]]
				if !ok {
					t.Fatalf("%s: %s is not in bertnode.env", tc.unit, w)
				}
				args = append(args, strings.Fields(v)...)
				continue
			}
			args = append(args, regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(w, func(v string) string {
				val, ok := env[v[2:len(v)-1]]
				if !ok {
					t.Fatalf("%s: %s is not in bertnode.env", tc.unit, v)
				}
				return val
			}))
		}
		if args[0] != "/usr/local/bin/bertnode" {
			t.Fatalf("%s runs %s", tc.unit, args[0])
		}
		cmd, rest, err := newRootCmd().Find(args[1:])
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil {
			err = cmd.ValidateArgs(cmd.Flags().Args())
		}
		if err != nil || cmd.Name() == "bertnode" {
			t.Errorf("%s (%s): %q: %v", tc.unit, tc.start, args, err)
		}
		if tc.start == "" {
			verifyUnit(t, tc.unit, string(text))
		}
	}
}

// verifyUnit runs systemd-analyze verify on the unit, its binary this test's.
func verifyUnit(t *testing.T, name, text string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Logf("systemd-analyze not installed: %s not verified", name)
		return
	}
	exe, _ := os.Executable()
	path := filepath.Join(t.TempDir(), name)
	os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/local/bin/bertnode", exe)), 0o644)
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
}
