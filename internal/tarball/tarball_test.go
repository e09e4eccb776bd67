package tarball

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoundTrip: a directory's files come back identical; subdirectories and links
// stay out; the same files pack to the same bytes.
func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"config.json": `{"hidden_size": 128}`, "model.safetensors": strings.Repeat("w", 100000), "vocab.txt": "[PAD]\n[UNK]\n"}
	for name, content := range files {
		os.WriteFile(filepath.Join(src, name), []byte(content), 0o600)
	}
	os.Mkdir(filepath.Join(src, "checkpoint-10"), 0o755)
	os.WriteFile(filepath.Join(src, "checkpoint-10", "x"), []byte("x"), 0o600)
	os.Symlink("vocab.txt", filepath.Join(src, "link.txt"))
	var a, b bytes.Buffer
	if err := Pack(src, &a); err != nil {
		t.Fatal(err)
	}
	if err := Pack(src, &b); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("packing twice differs (%v)", err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Unpack(&a, dst); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != len(files) {
		t.Fatalf("unpacked %v", entries)
	}
	for name, content := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != content {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}
}

// TestUnpackRefuses: entries that could write outside the directory or are not
// plain files are refused, and nothing of them is written.
func TestUnpackRefuses(t *testing.T) {
	for _, hdr := range []tar.Header{
		{Name: "/etc/passwd", Typeflag: tar.TypeReg},
		{Name: "../escape", Typeflag: tar.TypeReg},
		{Name: "sub/file", Typeflag: tar.TypeReg},
		{Name: "..", Typeflag: tar.TypeReg},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "config.json"},
		{Name: "dir", Typeflag: tar.TypeDir},
		{Name: "dev", Typeflag: tar.TypeChar},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdr.Mode = 0o644
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = 4
		}
		tw.WriteHeader(&hdr)
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte("evil"))
		}
		tw.Close()
		root := t.TempDir()
		dst := filepath.Join(root, "out")
		if err := Unpack(&buf, dst); err == nil {
			t.Errorf("%q (type %c) was accepted", hdr.Name, hdr.Typeflag)
		}
		filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				t.Errorf("%q left %s behind", hdr.Name, path)
			}
			return nil
		})
	}
	if err := Unpack(strings.NewReader("not a tar at all, but long enough to be read as a header block........"), t.TempDir()); err == nil {
		t.Error("garbage was accepted")
	}
}
