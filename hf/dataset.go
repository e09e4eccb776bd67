package hf

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ParquetRevision is the branch that holds the hub's Parquet conversion of every
// dataset, one directory per config and split; DuckDB's hf:// URLs call it ~parquet.
const ParquetRevision = "refs/convert/parquet"

// DatasetFiles downloads the files that an hf://datasets/ URL names into the cache,
// laid out as huggingface_hub lays out datasets--OWNER--NAME, and returns their local
// paths in order. The URL is
//
//	hf://datasets/OWNER/NAME[@REVISION]/PATH
//
// for one file of the dataset repository, as huggingface_hub's HfFileSystem, pandas
// and DuckDB read it (REVISION: a branch, tag or commit, "/" written %2F; default
// main), or
//
//	hf://datasets/OWNER/NAME@~parquet/CONFIG/SPLIT
//
// for a split of the hub's Parquet conversion (ParquetRevision): the files that the
// hub's API lists for it (GET /api/datasets/OWNER/NAME/parquet/CONFIG/SPLIT), in that
// order. DuckDB's form of the same, with /*.parquet after SPLIT, is read alike. A
// single file once downloaded is served from the cache in offline mode; a split's
// listing needs the hub.
func DatasetFiles(u string, opts Options) ([]string, error) {
	repo, rev, file, err := parseDatasetURL(u)
	if err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if rev == "" {
		rev = o.Revision
	}
	c := cache{root: filepath.Join(o.CacheDir, "datasets--"+strings.ReplaceAll(repo, "/", "--"))}
	d := &downloader{client: httpClient, token: o.Token}
	if split, ok := parquetSplit(rev, file); ok {
		if o.Offline {
			return nil, fmt.Errorf("%s: listing a split's Parquet files needs the hub, and offline mode (HF_HUB_OFFLINE) forbids it", u)
		}
		return d.splitFiles(u, o.Endpoint, repo, split, c)
	}
	if o.Offline {
		if b, err := os.ReadFile(filepath.Join(c.root, "refs", rev)); err == nil {
			local := filepath.Join(c.root, "snapshots", url.PathEscape(strings.TrimSpace(string(b))), filepath.FromSlash(file))
			if _, err := os.Stat(local); err == nil {
				return []string{local}, nil
			}
		}
		return nil, fmt.Errorf("%s is not in the cache %s, and offline mode (HF_HUB_OFFLINE) forbids downloading it", u, o.CacheDir)
	}
	esc := strings.Split(file, "/")
	for i, s := range esc {
		esc[i] = url.PathEscape(s)
	}
	meta, err := d.head(fmt.Sprintf("%s/datasets/%s/resolve/%s/%s", o.Endpoint, repo, url.PathEscape(rev), strings.Join(esc, "/")))
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%s: the hub at %s has no such dataset file (revision %s)", u, o.Endpoint, rev)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	commit := cmp.Or(meta.commit, rev)
	local := filepath.Join(c.root, "snapshots", url.PathEscape(commit), filepath.FromSlash(file))
	if err := d.fetch(meta, filepath.Join(c.root, "blobs"), local); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if meta.commit != "" {
		if err := c.setRef(rev, meta.commit); err != nil {
			return nil, err
		}
	}
	return []string{local}, nil
}

// splitFiles downloads the Parquet files of CONFIG/SPLIT as the hub's API lists them.
func (d *downloader) splitFiles(u, endpoint, repo, split string, c cache) ([]string, error) {
	list := fmt.Sprintf("%s/api/datasets/%s/parquet/%s", endpoint, repo, split)
	req, err := d.request(http.MethodGet, list)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := statusErr(resp, list); errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%s: the hub at %s has no Parquet conversion of config/split %s", u, endpoint, split)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	var urls []string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&urls); err != nil {
		return nil, fmt.Errorf("%s: GET %s: want a JSON list of URLs: %w", u, list, err)
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s: the hub lists no Parquet files for %s", u, split)
	}
	var paths []string
	for _, f := range urls {
		// The token goes with each request: only to the hub itself.
		name := path.Base(f)
		if !strings.HasPrefix(f, endpoint+"/") || path.Ext(name) != ".parquet" {
			return nil, fmt.Errorf("%s: the hub listed %q, not a Parquet file at %s", u, f, endpoint)
		}
		meta, err := d.head(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", u, f, err)
		}
		local := filepath.Join(c.root, "snapshots", url.PathEscape(cmp.Or(meta.commit, ParquetRevision)), filepath.FromSlash(split), name)
		if err := d.fetch(meta, filepath.Join(c.root, "blobs"), local); err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		paths = append(paths, local)
	}
	return paths, nil
}

// IsParquetSplit says whether u names a split of the hub's Parquet conversion.
func IsParquetSplit(u string) bool {
	_, rev, file, err := parseDatasetURL(u)
	_, ok := parquetSplit(rev, file)
	return err == nil && ok
}

// parquetSplit is CONFIG/SPLIT when a dataset URL's revision and path name a split of
// the Parquet conversion.
func parquetSplit(rev, file string) (string, bool) {
	split := strings.TrimSuffix(file, "/*.parquet")
	return split, rev == ParquetRevision && strings.Count(split, "/") == 1 && path.Ext(split) != ".parquet"
}

// parseDatasetURL splits hf://datasets/OWNER/NAME[@REVISION]/PATH; the revision
// ~parquet is ParquetRevision.
func parseDatasetURL(u string) (repo, rev, file string, err error) {
	rest, ok := strings.CutPrefix(u, "hf://datasets/")
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%s: %s (want hf://datasets/OWNER/NAME[@REVISION]/PATH or hf://datasets/OWNER/NAME@~parquet/CONFIG/SPLIT)", u, why)
	}
	if !ok {
		return bad("not a dataset URL")
	}
	owner, rest, _ := strings.Cut(rest, "/")
	name, file, _ := strings.Cut(rest, "/")
	name, rev, _ = strings.Cut(name, "@")
	if rev, err = url.PathUnescape(rev); err != nil {
		return bad("bad revision")
	}
	if rev == "~parquet" {
		rev = ParquetRevision
	}
	repo = owner + "/" + name
	switch {
	case !repoID.MatchString(repo) || strings.Contains(repo, ".."):
		return bad("not a dataset repository id OWNER/NAME")
	case file == "" || strings.HasSuffix(file, "/"):
		return bad("no file named")
	case strings.HasPrefix(rev, "/") || strings.Contains("/"+rev+"/", "/../"):
		return bad("bad revision")
	}
	for _, s := range strings.Split(file, "/") {
		if s == "" || s == "." || s == ".." || strings.Contains(s, `\`) {
			return bad("bad path")
		}
	}
	return repo, rev, file, nil
}
