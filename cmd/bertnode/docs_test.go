package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/chaos"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
)

// docs/migrating.md maps Trainer's and torchrun's names to bertnode's: every spec key,
// command and flag its bertnode column names must exist, and every top-level key be a
// flag of bertnode train, as the page says.
func TestMigratingDocNamesRealKeys(t *testing.T) {
	b, err := os.ReadFile("../../docs/migrating.md")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	trainCmd, _, err := root.Find([]string{"train"})
	if err != nil {
		t.Fatal(err)
	}
	anyFlag := func(name string) bool {
		found := false
		var walk func(c *cobra.Command)
		walk = func(c *cobra.Command) {
			found = found || c.Flags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil
			for _, s := range c.Commands() {
				walk(s)
			}
		}
		walk(root)
		return found
	}
	code := regexp.MustCompile("`([^`]+)`")
	keyRe := regexp.MustCompile(`^([a-z0-9_.]+):`)
	flagRe := regexp.MustCompile(`--[a-z0-9-]+`)
	checked := 0
	for i, line := range strings.Split(string(b), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || strings.HasPrefix(strings.TrimSpace(cols[1]), "---") || strings.TrimSpace(cols[2]) == "bertnode" {
			continue
		}
		for _, col := range cols[2:4] { // the bertnode column and the note
			for _, m := range code.FindAllStringSubmatch(col, -1) {
				item := m[1]
				switch {
				case strings.HasPrefix(item, "bertnode "):
					var words []string // the command's path and its arguments, not its flags
					for _, a := range strings.Fields(item)[1:] {
						if !strings.HasPrefix(a, "-") {
							words = append(words, a)
						}
					}
					c, _, err := root.Find(words)
					if err != nil || c == root {
						t.Errorf("docs/migrating.md:%d: %q: no such command", i+1, item)
						continue
					}
					for _, f := range flagRe.FindAllString(item, -1) {
						if c.Flags().Lookup(f[2:]) == nil {
							t.Errorf("docs/migrating.md:%d: %q: %s has no flag %s", i+1, item, c.CommandPath(), f)
						}
					}
					checked++
				case strings.HasPrefix(item, "--"):
					if !anyFlag(item[2:]) {
						t.Errorf("docs/migrating.md:%d: no command has the flag %s", i+1, item)
					}
					checked++
				case col == cols[2] && keyRe.MatchString(item):
					key := keyRe.FindStringSubmatch(item)[1]
					if !specHasKey(reflect.TypeOf(train.Spec{}), strings.Split(key, ".")) {
						t.Errorf("docs/migrating.md:%d: %q: no such key in a job spec", i+1, key)
					} else if !strings.Contains(key, ".") && trainCmd.Flags().Lookup(strings.ReplaceAll(key, "_", "-")) == nil {
						t.Errorf("docs/migrating.md:%d: %q: bertnode train has no flag --%s", i+1, key, strings.ReplaceAll(key, "_", "-"))
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d names checked", checked)
	if checked < 40 {
		t.Fatalf("%d names checked: the tables' format changed?", checked)
	}
}

// specHasKey says whether the YAML struct type st has the key path.
func specHasKey(st reflect.Type, path []string) bool {
	for st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	if st.Kind() != reflect.Struct {
		return false
	}
	for i := range st.NumField() {
		f := st.Field(i)
		if strings.Split(f.Tag.Get("yaml"), ",")[0] == path[0] {
			return len(path) == 1 || specHasKey(f.Type, path[1:])
		}
	}
	return false
}

// docs/faults.md cites, for each fault, the fault suite's kind that injects it and
// the tests that check it: each must exist (a renamed test or kind fails here).
func TestFaultsDocCitesRealKindsAndTests(t *testing.T) {
	b, err := os.ReadFile("../../docs/faults.md")
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder // every test function's declaration in the repository
	for _, dir := range []string{"../../node", "../../coordinator", "../../chaos", "."} {
		files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tests.Write(src)
		}
	}
	kinds := map[string]bool{}
	for _, k := range chaos.Kinds {
		kinds[string(k)] = true
	}
	cited := 0
	for _, m := range regexp.MustCompile("`(Test[A-Za-z0-9]+)`").FindAllStringSubmatch(string(b), -1) {
		cited++
		if !strings.Contains(tests.String(), "func "+m[1]+"(") {
			t.Errorf("docs/faults.md cites %s, which no test is", m[1])
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 5 {
			continue
		}
		// The table's last column: "suite KIND, KIND (...): ..." then the tests.
		for _, m := range regexp.MustCompile(`suite ([a-z0-9, -]+)`).FindAllStringSubmatch(cols[len(cols)-2], -1) {
			for _, k := range strings.Split(m[1], ",") {
				if k = strings.TrimSpace(k); k != "" {
					cited++
					if !kinds[k] {
						t.Errorf("docs/faults.md cites the fault kind %q, which bertnode chaos does not have", k)
					}
				}
			}
		}
	}
	if cited < 20 {
		t.Fatalf("%d kinds and tests cited: the page's format changed?", cited)
	}
}
