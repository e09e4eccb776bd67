package hf

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

// Options control where Resolve looks for a checkpoint. Zero fields take
// their value from the environment, as huggingface_hub does.
type Options struct {
	// Revision is a branch, tag or commit; default "main".
	Revision string
	// Endpoint is the hub's base URL; default $HF_ENDPOINT, else https://huggingface.co.
	Endpoint string
	// CacheDir holds downloaded checkpoints; default $HF_HUB_CACHE, else
	// $HF_HOME/hub, else $XDG_CACHE_HOME/bertnode/hub, else ~/.cache/bertnode/hub.
	CacheDir string
	// Token is sent as a bearer token; default $HF_TOKEN.
	Token string
	// Offline uses only the cache; also turned on by HF_HUB_OFFLINE=1.
	Offline bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Revision == "" {
		o.Revision = "main"
	}
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = "https://huggingface.co"
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.Token == "" {
		o.Token = os.Getenv("HF_TOKEN")
	}
	switch strings.ToLower(os.Getenv("HF_HUB_OFFLINE")) {
	case "1", "true", "yes", "on":
		o.Offline = true
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("HF_HUB_CACHE")
	}
	if o.CacheDir == "" && os.Getenv("HF_HOME") != "" {
		o.CacheDir = filepath.Join(os.Getenv("HF_HOME"), "hub")
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("no cache directory for hub downloads: %w", err)
		}
		o.CacheDir = filepath.Join(dir, "bertnode", "hub")
	}
	if strings.HasPrefix(o.Revision, "/") || strings.Contains("/"+o.Revision+"/", "/../") {
		return o, fmt.Errorf("invalid revision %q", o.Revision)
	}
	return o, nil
}

// hubFile is one file of a checkpoint. Of each group, the first file the
// hub has is used; a group marked required must have one.
type hubFile struct {
	group    string
	required bool
	names    []string
}

var checkpointFiles = []hubFile{
	{"config", true, []string{"config.json"}},
	{"weights", true, []string{"model.safetensors", "pytorch_model.bin"}},
	{"vocab.txt", false, []string{"vocab.txt"}},
	{"tokenizer.json", false, []string{"tokenizer.json"}},
	// The slow tokenizers' files: the only tokenizer some checkpoints have
	// (deberta-v3's spm.model), and what a slow tokenizer saved back needs.
	{"vocab.json", false, []string{"vocab.json"}},
	{"merges.txt", false, []string{"merges.txt"}},
	{"spiece.model", false, []string{"spiece.model"}},
	{"spm.model", false, []string{"spm.model"}},
	{"tokenizer_config.json", false, []string{"tokenizer_config.json"}},
	{"special_tokens_map.json", false, []string{"special_tokens_map.json"}},
	// A sentence-transformers model's modules, pooling and length: how an embedding
	// model such as all-mpnet-base-v2 pools and normalizes its vectors.
	{"modules.json", false, []string{"modules.json"}},
	{"1_Pooling/config.json", false, []string{"1_Pooling/config.json"}},
	{"sentence_bert_config.json", false, []string{"sentence_bert_config.json"}},
}

// complete reports whether dir holds a usable checkpoint: a config, weights
// and a tokenizer in one of the forms tokenize.Load reads.
func complete(dir string) bool {
	has := func(names ...string) bool {
		for _, n := range names {
			if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
		return false
	}
	return has("config.json") && has("model.safetensors", "pytorch_model.bin") &&
		(has("vocab.txt", "tokenizer.json", "spiece.model", "spm.model") || has("vocab.json") && has("merges.txt"))
}

var (
	repoID   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$`)
	commitID = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// Resolve returns a local directory holding the checkpoint nameOrDir. An
// existing directory is returned as is. Anything else is a hub repository id
// such as "bert-base-uncased" or "org/name", whose config, weights and
// tokenizer files are downloaded once into the cache; later calls, and
// calls in offline mode, are served from the cache without the network.
func Resolve(nameOrDir string, opts Options) (string, error) {
	if st, err := os.Stat(nameOrDir); err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("model %s: not a directory", nameOrDir)
		}
		return nameOrDir, nil
	}
	if strings.HasPrefix(nameOrDir, ".") || strings.HasPrefix(nameOrDir, "/") || strings.HasPrefix(nameOrDir, "~") ||
		!repoID.MatchString(nameOrDir) || strings.Contains(nameOrDir, "..") {
		return "", fmt.Errorf("model %q: no such directory, and not a hub repository id", nameOrDir)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return "", err
	}
	repo := nameOrDir
	c := cache{root: filepath.Join(o.CacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))}
	if dir, ok := c.lookup(o.Revision); ok {
		return dir, nil
	}
	if o.Offline {
		return "", fmt.Errorf("model %s (revision %s) is not in the cache %s, and offline mode (HF_HUB_OFFLINE) forbids downloading it", repo, o.Revision, o.CacheDir)
	}
	d := &downloader{client: httpClient, token: o.Token}
	rev, snapshot := o.Revision, ""
	for _, f := range checkpointFiles {
		found := false
		for _, name := range f.names {
			u := fmt.Sprintf("%s/%s/resolve/%s/%s", o.Endpoint, repo, url.PathEscape(rev), name)
			meta, err := d.head(u)
			if errors.Is(err, errNotFound) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("model %s: %s: %w", repo, name, err)
			}
			if snapshot == "" {
				// Pin the commit the first file came from, so that a branch
				// moving mid-download cannot mix two revisions.
				if meta.commit != "" {
					rev = meta.commit
				}
				snapshot = filepath.Join(c.root, "snapshots", url.PathEscape(rev))
			}
			if err := d.fetch(meta, filepath.Join(c.root, "blobs"), filepath.Join(snapshot, name)); err != nil {
				return "", fmt.Errorf("model %s: %s: %w", repo, name, err)
			}
			found = true
			break
		}
		if !found && f.required {
			return "", fmt.Errorf("model %s (revision %s) at %s: the hub has none of %s", repo, o.Revision, o.Endpoint, strings.Join(f.names, ", "))
		}
	}
	if !complete(snapshot) {
		return "", fmt.Errorf("model %s (revision %s): the hub has no tokenizer (tokenizer.json, vocab.txt, vocab.json with merges.txt, spiece.model or spm.model)", repo, o.Revision)
	}
	// The ref is written last: its presence is what makes the snapshot count
	// as complete for later and offline calls.
	if err := c.setRef(o.Revision, rev); err != nil {
		return "", err
	}
	return snapshot, nil
}

// cache is one repository's directory, laid out like huggingface_hub's:
// refs/<revision> holds a commit, snapshots/<commit>/ the files, blobs/ the
// downloads in progress.
type cache struct{ root string }

func (c cache) lookup(rev string) (string, bool) {
	commit := rev
	if !commitID.MatchString(rev) {
		b, err := os.ReadFile(filepath.Join(c.root, "refs", rev))
		if err != nil {
			return "", false
		}
		commit = strings.TrimSpace(string(b))
	}
	dir := filepath.Join(c.root, "snapshots", url.PathEscape(commit))
	return dir, complete(dir)
}

func (c cache) setRef(rev, commit string) error {
	path := filepath.Join(c.root, "refs", rev)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(commit), 0o644)
}

// httpClient bounds the wait for a response, never the transfer: weights
// take as long as the link needs.
var httpClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return t
}()}
