// Command gotchadapt prepares github.com/sugarme/gotch for the libtorch on this machine.
//
// gotch v0.9.1 is generated for libtorch 2.1 and hard-codes CUDA in its cgo flags, so as
// published it builds against neither Debian's libtorch 1.13 nor a CPU-only libtorch.
// This tool copies gotch from the module cache into a fixed directory (go.mod's replace
// points there), writes libtch/lib.go for the libtorch it finds, replaces the body of each
// generated op that does not compile against it with a stub that fails at run time, and
// fixes gotch's leak of per-call out-pointer allocations, drops its per-tensor GC
// ballast, and makes its ops panic on a libtorch error rather than exit. The result is keyed by a stamp, so
// a second run with nothing changed touches no file and Go's build cache stays warm.
package main

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	gotchModule  = "github.com/sugarme/gotch"
	gotchVersion = "v0.9.1"
	// adapterRev changes whenever the adaptation itself changes, to invalidate stamps.
	adapterRev = "13"
	stampName  = ".bertnode-adapt"
	listName   = "unavailable-ops.txt"
)

// ext holds our additions to gotch's C API (see ext/bertnode_ext.h).
//
//go:embed ext
var ext embed.FS

func main() {
	out := flag.String("out", "build/gotch", "directory to write the adapted gotch into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gotchadapt:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	lt, err := findLibtorch(os.Getenv)
	if err != nil {
		return err
	}
	src, err := moduleDir()
	if err != nil {
		return err
	}
	key := stampKey(lt)
	if b, err := os.ReadFile(filepath.Join(out, stampName)); err == nil && string(b) == key {
		fmt.Printf("gotch %s adapted for libtorch %s (cached)\n", gotchVersion, lt.Version)
		return nil
	}
	start := time.Now()
	fmt.Printf("adapting gotch %s for libtorch %s (%s, cxx11 abi %v, cuda %v)\n", gotchVersion, lt.Version, lt.Kind, lt.CXX11ABI, lt.CUDA)
	tmp := out + ".tmp"
	os.RemoveAll(tmp)
	if err := copyTree(src, tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "libtch", "lib.go"), []byte(lt.libGo()), 0o644); err != nil {
		return err
	}
	if err := addExt(filepath.Join(tmp, "libtch")); err != nil {
		return err
	}
	n, err := fixLeaks(filepath.Join(tmp, "ts"))
	if err != nil {
		return err
	}
	fmt.Printf("  fixed %d leaking out-pointer allocations\n", n)
	if n, err = keepAlive(filepath.Join(tmp, "ts", "tensor-generated.go")); err != nil {
		return err
	}
	fmt.Printf("  %d ops keep their arguments alive through the call\n", n)
	if err := dropBallast(filepath.Join(tmp, "ts")); err != nil {
		return err
	}
	if err := boundPickle(filepath.Join(tmp, "pickle")); err != nil {
		return err
	}
	if n, err = panicOnError(filepath.Join(tmp, "ts"), filepath.Join(tmp, "nn")); err != nil {
		return err
	}
	fmt.Printf("  %d exits on a libtorch error panic instead\n", n)
	stubbed, err := stubUnavailable(filepath.Join(tmp, "libtch"), lt)
	if err != nil {
		return err
	}
	sort.Strings(stubbed)
	list := strings.Join(stubbed, "\n")
	if list != "" {
		list += "\n"
	}
	if err := os.WriteFile(filepath.Join(tmp, "libtch", listName), []byte(list), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, stampName), []byte(key), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("  %d ops unavailable in libtorch %s (listed in %s); done in %s\n",
		len(stubbed), lt.Version, filepath.Join(out, "libtch", listName), time.Since(start).Round(time.Second))
	return nil
}

// stampKey hashes everything the adapted tree depends on: the adapter's revision, our C
// API additions, gotch's version and the libtorch found.
func stampKey(lt *Libtorch) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s@%s\n%s", adapterRev, gotchModule, gotchVersion, lt.describe())
	entries, _ := ext.ReadDir("ext")
	for _, e := range entries {
		b, _ := ext.ReadFile("ext/" + e.Name())
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// moduleDir finds gotch in the module cache, downloading it through the module proxy
// when it is not there yet. GOTCH_SRC names an unpacked copy instead, for machines
// without a module proxy.
func moduleDir() (string, error) {
	if dir := os.Getenv("GOTCH_SRC"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command("go", "mod", "download", "-json", gotchModule+"@"+gotchVersion)
	cmd.Dir = os.TempDir() // outside our module, whose replace would hide gotch
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	b, err := cmd.Output()
	var mod struct{ Dir, Error string } // -json reports a failure in Error, and exits 1
	if jerr := json.Unmarshal(b, &mod); jerr == nil && mod.Error != "" {
		return "", fmt.Errorf("go mod download: %s", mod.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %v", gotchModule, gotchVersion, err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("go mod download printed no Dir: %s", b)
	}
	return mod.Dir, nil
}

// copyTree copies the module, leaving out what we never build (examples, vision models'
// data), and makes the copy writable (the module cache is read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (rel == "example" || rel == "gen" || rel == ".git") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// stubUnavailable compiles torch_api.cpp for syntax only, stubs the functions the
// compiler blames, and repeats until it compiles (an error can hide others behind it).
func stubUnavailable(libtch string, lt *Libtorch) ([]string, error) {
	var all []string
	for pass := 1; pass <= 6; pass++ {
		args := append([]string{"-fsyntax-only", "-I" + libtch}, lt.cxxFlags()...)
		args = append(args, filepath.Join(libtch, "torch_api.cpp"))
		cmd := exec.Command("g++", args...)
		outb, err := cmd.CombinedOutput()
		if err == nil {
			return all, nil
		}
		out := string(outb)
		changed := false
		for _, name := range []string{"torch_api_generated.cpp.h", "torch_api.cpp"} {
			path := filepath.Join(libtch, name)
			blamed := errorLines(out, path)
			if len(blamed) == 0 {
				continue
			}
			srcb, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			text, names, err := stubFunctions(string(srcb), blamed, lt.Version)
			if err != nil {
				return nil, fmt.Errorf("%s: %v\ncompiler said:\n%s", name, err, tail(out, 4000))
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				return nil, err
			}
			all = append(all, names...)
			changed = true
		}
		fmt.Printf("  pass %d: %d ops stubbed so far\n", pass, len(all))
		if !changed {
			return nil, fmt.Errorf("torch_api.cpp does not compile against libtorch %s, and not in a generated op:\n%s", lt.Version, tail(out, 4000))
		}
	}
	return nil, fmt.Errorf("torch_api.cpp still does not compile after 6 passes")
}

// addExt copies our C API additions into libtch and compiles them as part of
// torch_api.cpp.
func addExt(libtch string) error {
	entries, err := ext.ReadDir("ext")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := ext.ReadFile("ext/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(libtch, strings.TrimSuffix(e.Name(), ".in")), b, 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(libtch, "torch_api.cpp"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("\n#include \"bertnode_ext.cpp.h\"\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
