package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Libtorch describes one libtorch installation: where its headers and libraries are and
// how code must be compiled to link against it.
type Libtorch struct {
	Kind     string   // "debian" or "dir" (an official libtorch or a PyTorch wheel's torch/)
	Version  string   // e.g. "1.13.1+dfsg-4" or "2.11.0+cu130"
	Includes []string // header search dirs
	LibDir   string
	CXX11ABI bool // whether libc10 was built with _GLIBCXX_USE_CXX11_ABI=1
	CUDA     bool // libtorch_cuda is present
}

// findLibtorch uses $LIBTORCH when set, else Debian's libtorch-dev.
func findLibtorch(env func(string) string) (*Libtorch, error) {
	if dir := env("LIBTORCH"); dir != "" {
		return libtorchDir(dir)
	}
	return libtorchDebian()
}

func libtorchDir(dir string) (*Libtorch, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	lt := &Libtorch{
		Kind:     "dir",
		Includes: []string{filepath.Join(dir, "include"), filepath.Join(dir, "include", "torch", "csrc", "api", "include")},
		LibDir:   filepath.Join(dir, "lib"),
	}
	for _, d := range append(lt.Includes, lt.LibDir) {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("LIBTORCH=%s is not a libtorch folder (an official libtorch or a PyTorch wheel's torch/ with include/ and lib/): %w", dir, err)
		}
	}
	if lt.Version, err = dirVersion(dir); err != nil {
		return nil, err
	}
	return lt, lt.probeLibs()
}

func libtorchDebian() (*Libtorch, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libtorch-dev").Output()
	if err != nil || len(out) == 0 {
		return nil, errors.New("no libtorch found: install Debian's libtorch-dev (make deps does) or set LIBTORCH=/path/to/libtorch")
	}
	arch, err := exec.Command("gcc", "-print-multiarch").Output()
	if err != nil {
		return nil, fmt.Errorf("gcc -print-multiarch: %w", err)
	}
	lt := &Libtorch{
		Kind:     "debian",
		Version:  strings.TrimSpace(string(out)),
		Includes: []string{"/usr/include", "/usr/include/torch/csrc/api/include"},
		LibDir:   filepath.Join("/usr/lib", strings.TrimSpace(string(arch))),
	}
	return lt, lt.probeLibs()
}

// dirVersion reads the version an official libtorch (build-version) or a wheel
// (../version.py) records, falling back to the headers.
func dirVersion(dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "build-version")); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, "version.py")); err == nil {
		if m := regexp.MustCompile(`__version__\s*=\s*['"]([^'"]+)['"]`).FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	h := filepath.Join(dir, "include", "torch", "csrc", "api", "include", "torch", "version.h")
	if b, err := os.ReadFile(h); err == nil {
		// The value is on a continuation line in the version.h libtorch generates.
		if m := regexp.MustCompile(`#define TORCH_VERSION[ \t]+(?:\\\n[ \t]*)?"([^"]+)"`).FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	return "", fmt.Errorf("cannot tell the libtorch version in %s: no build-version, version.py or torch/version.h", dir)
}

// probeLibs checks the libraries exist and reads the C++ ABI off libc10's symbols:
// std::string in a cxx11-ABI build mangles as std::__cxx11::basic_string.
func (lt *Libtorch) probeLibs() error {
	c10 := filepath.Join(lt.LibDir, "libc10.so")
	f, err := elf.Open(c10)
	if err != nil {
		return fmt.Errorf("libtorch in %s: libc10.so: %w", lt.LibDir, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return fmt.Errorf("%s: reading symbols: %w", c10, err)
	}
	for _, s := range syms {
		if strings.Contains(s.Name, "St7__cxx11") || strings.Contains(s.Name, "B5cxx11") {
			lt.CXX11ABI = true
			break
		}
	}
	_, err = os.Stat(filepath.Join(lt.LibDir, "libtorch_cuda.so"))
	lt.CUDA = err == nil
	return nil
}

// cxxStd picks the language standard the headers need: libtorch 2.10 and later need C++20.
func (lt *Libtorch) cxxStd() string {
	var major, minor int
	fmt.Sscanf(lt.Version, "%d.%d", &major, &minor)
	if major > 2 || major == 2 && minor >= 10 {
		return "c++20"
	}
	return "c++17"
}

// cxxFlags are the flags torch_api.cpp is compiled with, both by cgo and by the probe.
// -O0 -g0: the wrapper only forwards calls into libtorch, and optimising it costs a minute
// of compile time for no measurable run-time gain.
func (lt *Libtorch) cxxFlags() []string {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	fl := []string{"-std=" + lt.cxxStd(), "-O0", "-g0", "-w", "-D_GLIBCXX_USE_CXX11_ABI=" + abi}
	for _, inc := range lt.Includes {
		if inc != "/usr/include" { // a system dir given with -I breaks #include_next in libstdc++
			fl = append(fl, "-I"+inc)
		}
	}
	return fl
}

func (lt *Libtorch) ldFlags() []string {
	fl := []string{"-L" + lt.LibDir, "-Wl,-rpath," + lt.LibDir}
	if lt.CUDA {
		// libtorch registers its CUDA backend from static initialisers in libtorch_cuda:
		// nothing references it by symbol, so --as-needed would drop it.
		fl = append(fl, "-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed")
	}
	return append(fl, "-ltorch", "-ltorch_cpu", "-lc10", "-lstdc++")
}

// libGo is gotch's libtch/lib.go, rewritten for this libtorch.
func (lt *Libtorch) libGo() string {
	var b strings.Builder
	fmt.Fprintf(&b, "// Code generated by bertnode's tools/gotchadapt for libtorch %s (%s); DO NOT EDIT.\n\npackage libtch\n\n", lt.Version, lt.Kind)
	fmt.Fprintf(&b, "// #cgo CFLAGS: -I${SRCDIR} -w\n")
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -I${SRCDIR} %s\n", strings.Join(lt.cxxFlags(), " "))
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s\n", strings.Join(lt.ldFlags(), " "))
	b.WriteString("import \"C\"\n")
	return b.String()
}

// describe is what the stamp hashes: anything here changing means adapting again.
func (lt *Libtorch) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s abi=%v cuda=%v lib=%s inc=%s\n", lt.Kind, lt.Version, lt.CXX11ABI, lt.CUDA, lt.LibDir, strings.Join(lt.Includes, ":"))
	if out, err := exec.Command("g++", "--version").Output(); err == nil {
		line, _ := bufio.NewReader(strings.NewReader(string(out))).ReadString('\n')
		b.WriteString(line)
	}
	return b.String()
}
