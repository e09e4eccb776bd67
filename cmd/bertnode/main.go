// Command bertnode fine-tunes BERT models, alone or data-parallel across machines.
package main

import (
	"fmt"
	"os"

	"github.com/bertnode/bertnode/internal/nativeenv"
)

func main() {
	nativeenv.Ensure()
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bertnode:", err)
		os.Exit(1)
	}
}
