package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bertnode/bertnode/internal/tarball"
)

// FetchUpload resolves a spec's model or tokenizer path. One the CLI uploaded
// (blob:<sha256>, a packed directory, or blob:<sha256>/<file>, a packed file) is
// fetched and unpacked once into dir/<sha256>, which later jobs reuse; the result is
// that directory or the file in it. Any other path (a preset, a hub name, a shared
// path) comes back as it is.
func FetchUpload(ctx context.Context, c Blobs, dir, path string) (string, error) {
	ref, ok := strings.CutPrefix(path, "blob:")
	if !ok {
		return path, nil
	}
	sha, file, nested := strings.Cut(ref, "/")
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" ||
		nested && (file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`)) {
		return "", fmt.Errorf("%q: want blob:<sha256> or blob:<sha256>/<file name>", path)
	}
	dst := filepath.Join(dir, sha)
	if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
		if err := unpackBlob(ctx, c, sha, dst); err != nil {
			return "", fmt.Errorf("fetching %s: %w", path, err)
		}
	} else if err != nil {
		return "", err
	}
	if nested {
		return filepath.Join(dst, file), nil
	}
	return dst, nil
}

// unpackBlob unpacks blob sha into dst through a temporary directory, so that dst
// exists only whole.
func unpackBlob(ctx context.Context, c Blobs, sha, dst string) error {
	rc, _, err := c.GetBlob(ctx, sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := tarball.Unpack(rc, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another session unpacked it first
		}
		return err
	}
	return nil
}
