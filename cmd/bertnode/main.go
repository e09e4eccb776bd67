// Command bertnode fine-tunes BERT models, alone or data-parallel across machines.
package main

import (
	"fmt"
	"os"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
	"github.com/spf13/cobra"
)

func main() {
	root := newRootCmd()
	if needsNative(root, os.Args[1:]) {
		nativeenv.Ensure()
	}
	if err := execute(root); err != nil {
		fmt.Fprintln(os.Stderr, "bertnode:", err)
		os.Exit(1)
	}
}

// execute runs the command line; a libtorch error that no command answered (an eval
// out of memory) is its error, a line rather than a crash with two stacks.
func execute(root *cobra.Command) (err error) {
	defer model.Catch(&err)
	return root.Execute()
}

// clusterOnly are the commands that talk to the cluster, write files or run a
// coordinator: no libtorch or OpenBLAS op runs in them, so they skip nativeenv's
// re-execution, which started a second process and doubled their start (about 2.3 s
// instead of 0.9 s here, most of it libtorch's loading).
var clusterOnly = map[string]bool{"cancel": true, "certs": true, "cluster": true, "completion": true, "coordinator": true,
	"delete": true, "download": true, "help": true, "jobs": true, "keygen": true, "logs": true, "members": true, "nodes": true,
	"status": true, "submit": true, "token": true}

// needsNative says whether the command line args may run libtorch: all but the root's
// usage and the clusterOnly commands (and their subcommands).
func needsNative(root *cobra.Command, args []string) bool {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	cmd, _, err := root.Find(args)
	if err != nil {
		return true
	}
	if cmd == root {
		return false
	}
	for cmd.Parent() != root {
		cmd = cmd.Parent()
	}
	return !clusterOnly[cmd.Name()]
}
