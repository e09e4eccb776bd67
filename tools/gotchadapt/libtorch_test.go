package main

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// c10Lib compiles a one-function libc10.so with the given C++ ABI; its std::string
// parameter is what the probe reads the ABI from.
func c10Lib(t *testing.T, abi string) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "c10.cpp")
	if err := os.WriteFile(src, []byte("#include <string>\nstd::size_t c10_len(const std::string &s) { return s.size(); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(dir, "libc10.so")
	if out, err := exec.Command("g++", "-shared", "-fPIC", "-D_GLIBCXX_USE_CXX11_ABI="+abi, "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	return []byte(read(t, so))
}

// torchVersionH is libtorch's torch/version.h as generated from version.h.in.
const torchVersionH = `#pragma once

/// Indicates the major version of LibTorch.
#define TORCH_VERSION_MAJOR 2

/// Indicates the minor version of LibTorch.
#define TORCH_VERSION_MINOR 10

/// Indicates the patch version of LibTorch.
#define TORCH_VERSION_PATCH 0

/// Indicates the version of LibTorch.
#define TORCH_VERSION \
  "2.10.0"
`

func TestLibtorchDir(t *testing.T) {
	libs := map[string][]byte{"1": c10Lib(t, "1"), "0": c10Lib(t, "0")}
	versionH := filepath.Join("include", "torch", "csrc", "api", "include", "torch", "version.h")

	for _, tc := range []struct {
		name    string
		abi     string            // libc10.so's ABI, "" for none
		files   map[string]string // more files in the tree
		version string
		cxx11   bool
		cuda    bool
	}{
		{name: "official cxx11", abi: "1", files: map[string]string{"build-version": "2.1.0+cpu\n"}, version: "2.1.0+cpu", cxx11: true},
		{name: "official pre-cxx11", abi: "0", files: map[string]string{"build-version": "2.1.0+cpu\n"}, version: "2.1.0+cpu"},
		{name: "wheel with cuda", abi: "1", cuda: true, cxx11: true, version: "2.11.0+cu130",
			files: map[string]string{"version.py": "from typing import Optional\n\n__all__ = ['__version__']\n__version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\n", "lib/libtorch_cuda.so": ""}},
		{name: "headers only tell", abi: "0", files: map[string]string{versionH: torchVersionH}, version: "2.10.0"},
		{name: "build-version first", abi: "1", cxx11: true, version: "2.1.0+cu121",
			files: map[string]string{"build-version": "2.1.0+cu121", "version.py": "__version__ = '9.9'\n", versionH: torchVersionH}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeLibtorch(t, tc.files)
			if err := os.WriteFile(filepath.Join(dir, "lib", "libc10.so"), libs[tc.abi], 0o644); err != nil {
				t.Fatal(err)
			}
			lt, err := findLibtorch(func(k string) string {
				if k == "LIBTORCH" {
					return dir
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			if lt.Kind != "dir" || lt.Version != tc.version || lt.CXX11ABI != tc.cxx11 || lt.CUDA != tc.cuda || lt.LibDir != filepath.Join(dir, "lib") {
				t.Errorf("got %+v, want version %s, cxx11 %v, cuda %v", lt, tc.version, tc.cxx11, tc.cuda)
			}
			lib := lt.libGo()
			if _, err := parser.ParseFile(token.NewFileSet(), "lib.go", lib, 0); err != nil {
				t.Fatalf("lib.go does not parse: %v\n%s", err, lib)
			}
			for _, want := range []string{
				"-D_GLIBCXX_USE_CXX11_ABI=" + tc.abi,
				"-I" + filepath.Join(dir, "include") + " -I" + filepath.Join(dir, "include", "torch", "csrc", "api", "include"),
				"-L" + lt.LibDir + " -Wl,-rpath," + lt.LibDir,
				"-ltorch -ltorch_cpu -lc10 -lstdc++\n",
			} {
				if !strings.Contains(lib, want) {
					t.Errorf("lib.go lacks %q:\n%s", want, lib)
				}
			}
			// libtorch_cuda registers CUDA from static initialisers: it must be linked even
			// though nothing references it.
			cudaFlags := "-Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed -ltorch "
			if strings.Contains(lib, cudaFlags) != tc.cuda || strings.Contains(lib, "cuda") != tc.cuda {
				t.Errorf("cuda %v, but lib.go says:\n%s", tc.cuda, lib)
			}
		})
	}
}

func TestLibtorchDirNotLibtorch(t *testing.T) {
	libc10 := c10Lib(t, "1")
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // with DIR for the folder
	}{
		{"no headers", map[string]string{"lib/libc10.so": "x", "build-version": "2.1.0"}, "LIBTORCH=DIR is not a libtorch folder (an official libtorch or a PyTorch wheel's torch/ with include/ and lib/): stat DIR/include: no such file or directory"},
		{"no version", map[string]string{"include/torch/csrc/api/include/torch/torch.h": ""}, "cannot tell the libtorch version in DIR: no build-version, version.py or torch/version.h"},
		{"no libc10", map[string]string{"include/torch/csrc/api/include/torch/torch.h": "", "build-version": "2.1.0"}, "libtorch in DIR/lib: libc10.so: open DIR/lib/libc10.so: no such file or directory"},
		{"libc10 not ELF", map[string]string{"include/torch/csrc/api/include/torch/torch.h": "", "build-version": "2.1.0", "lib/libc10.so": "INPUT(libc10.so.2)\n"}, "libtorch in DIR/lib: libc10.so: bad magic number '[73 78 80 85]' in record at byte 0x0"},
		{"libc10 ok", map[string]string{"include/torch/csrc/api/include/torch/torch.h": "", "build-version": "2.1.0", "lib/libc10.so": string(libc10)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
			_, err := libtorchDir(dir)
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if (err == nil) != (want == "") || err != nil && err.Error() != want {
				t.Errorf("error %v\nwant %s", err, want)
			}
		})
	}
}

// fakeLibtorch lays out the folders an official libtorch has, plus files.
func fakeLibtorch(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for _, d := range []string{"include/torch/csrc/api/include", "lib"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, dir, files)
	return dir
}

func TestCxxStd(t *testing.T) {
	for v, want := range map[string]string{
		"1.13.1+dfsg-4": "c++17", "2.1.0+cu121": "c++17", "2.9.1": "c++17",
		"2.10.0": "c++20", "2.11.0+cu130": "c++20", "3.0.0": "c++20",
	} {
		if got := (&Libtorch{Version: v}).cxxStd(); got != want {
			t.Errorf("libtorch %s: %s, want %s", v, got, want)
		}
	}
}
