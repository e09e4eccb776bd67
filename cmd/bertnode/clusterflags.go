package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bertnode/bertnode/api"
	"github.com/bertnode/bertnode/internal/clusterkey"
	"github.com/bertnode/bertnode/internal/tlsconfig"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// envCoordinator names the coordinators when --coordinator does not.
const envCoordinator = "BERTNODE_COORDINATOR"

// clusterFlags are how a command finds the cluster: the coordinators' addresses and
// the cluster secret come from flags, else the environment, else the config file;
// TLS files from flags, else the config file.
type clusterFlags struct {
	coordinators           []string
	secretFile, config     string
	tlsCert, tlsKey, tlsCA string
}

// fileConfig is the config file (--config, default ~/.config/bertnode/config.yaml).
type fileConfig struct {
	Coordinator addrList `yaml:"coordinator"` // a list, or one comma-separated string
	Secret      string   `yaml:"secret"`      // bn1:...
	SecretFile  string   `yaml:"secret_file"`
	TLSCert     string   `yaml:"tls_cert"`
	TLSKey      string   `yaml:"tls_key"`
	TLSCA       string   `yaml:"tls_ca"`
}

type addrList []string

func (a *addrList) UnmarshalYAML(n *yaml.Node) error {
	var list []string
	if n.Kind == yaml.ScalarNode {
		list = []string{n.Value}
	} else if err := n.Decode(&list); err != nil {
		return err
	}
	*a = splitAddrs(list)
	return nil
}

func splitAddrs(list []string) []string {
	var out []string
	for _, s := range list {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// addClusterFlags adds the flags that reach a cluster; withAddrs adds --coordinator.
func addClusterFlags(c *cobra.Command, withAddrs bool) *clusterFlags {
	f := &clusterFlags{}
	if withAddrs {
		c.Flags().StringSliceVar(&f.coordinators, "coordinator", nil,
			"coordinator API addresses host:port, comma-separated (else $"+envCoordinator+", else the config file's coordinator:)")
	}
	c.Flags().StringVar(&f.secretFile, "secret-file", "",
		"the cluster secret's `FILE` (else $"+clusterkey.Env+", else the config file's secret: or secret_file:)")
	c.Flags().StringVar(&f.config, "config", "", "config `FILE` (default ~/.config/bertnode/config.yaml, if present)")
	c.Flags().StringVar(&f.tlsCert, "tls-cert", "", "mutual TLS: this process's certificate `FILE` (else the config file's tls_cert:)")
	c.Flags().StringVar(&f.tlsKey, "tls-key", "", "mutual TLS: its private key `FILE` (else tls_key:)")
	c.Flags().StringVar(&f.tlsCA, "tls-ca", "", "mutual TLS: the CA `FILE` that signs every member's certificate (else tls_ca:)")
	return f
}

// withClient makes c a command that talks to the cluster: it adds the cluster flags,
// and run gets a client connected by them, its context ending with the command.
func withClient(c *cobra.Command, run func(cmd *cobra.Command, ctx context.Context, cl *api.Client, args []string) error) {
	cf := addClusterFlags(c, true)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cl, ctx, stop, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer stop()
		return run(cmd, ctx, cl, args)
	}
}

// file reads the config file: the one --config names (which must exist), else the
// default one if there is one.
func (f *clusterFlags) file() (fileConfig, error) {
	var fc fileConfig
	path, must := f.config, true
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fc, nil
		}
		path, must = filepath.Join(home, ".config", "bertnode", "config.yaml"), false
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !must {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// secret is the cluster secret.
func (f *clusterFlags) secret() (clusterkey.Secret, error) {
	if f.secretFile != "" || os.Getenv(clusterkey.Env) != "" {
		return clusterkey.Load(f.secretFile)
	}
	fc, err := f.file()
	if err != nil {
		return nil, err
	}
	switch {
	case fc.Secret != "":
		return clusterkey.Parse(fc.Secret)
	case fc.SecretFile != "":
		return clusterkey.Load(fc.SecretFile)
	}
	return clusterkey.Load("") // says where a secret can come from
}

// tls is the mutual TLS configuration, nil without TLS files; peer: for a process
// that both accepts and dials.
func (f *clusterFlags) tls(peer bool) (*tls.Config, error) {
	cert, key, ca := f.tlsCert, f.tlsKey, f.tlsCA
	if cert == "" && key == "" && ca == "" {
		fc, err := f.file()
		if err != nil {
			return nil, err
		}
		cert, key, ca = fc.TLSCert, fc.TLSKey, fc.TLSCA
	}
	switch {
	case cert == "" && key == "" && ca == "":
		return nil, nil
	case cert == "" || key == "" || ca == "":
		return nil, errors.New("TLS: --tls-cert, --tls-key and --tls-ca go together")
	case peer:
		return tlsconfig.Peer(cert, key, ca)
	}
	return tlsconfig.Client(cert, key, ca)
}

// client is an API client for the cluster.
func (f *clusterFlags) client() (*api.Client, error) {
	addrs := splitAddrs(f.coordinators)
	if len(addrs) == 0 {
		addrs = splitAddrs([]string{os.Getenv(envCoordinator)})
	}
	if len(addrs) == 0 {
		fc, err := f.file()
		if err != nil {
			return nil, err
		}
		addrs = fc.Coordinator
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no coordinator: use --coordinator host:port, set $%s, or write coordinator: in the config file", envCoordinator)
	}
	secret, err := f.secret()
	if err != nil {
		return nil, err
	}
	t, err := f.tls(false)
	if err != nil {
		return nil, err
	}
	return &api.Client{Addrs: addrs, Token: secret.Token(), TLS: t, GiveUp: giveUp}, nil
}

// giveUp is how long a command retries the coordinators before it fails with their
// last answer: an election takes seconds, but a cluster that lost most of its
// coordinators has no leader until they are back.
const giveUp = 30 * time.Second

// connect is the client and the command's context, cancelled by Ctrl-C or SIGTERM.
func (f *clusterFlags) connect(cmd *cobra.Command) (*api.Client, context.Context, context.CancelFunc, error) {
	cl, err := f.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := interruptible(cmd)
	return cl, ctx, stop, nil
}

// interruptible is the command's context, cancelled by Ctrl-C or SIGTERM.
func interruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}
