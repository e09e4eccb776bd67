package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/bertnode/bertnode/internal/nativeenv"
	"github.com/bertnode/bertnode/model"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

func newVersionCmd() *cobra.Command {
	var blasCore bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print bertnode's build, and the BLAS kernels and devices libtorch runs with",
		Long: `Print bertnode's build (commit, Go version) and what libtorch computes with here:
the BLAS it calls and which kernels (bertnode names OpenBLAS's kernels when OpenBLAS
falls back below what the CPU supports; OPENBLAS_CORETYPE overrides), CUDA devices, and
libtorch's version with the fused ops the model takes from it (scaled-dot-product
attention, and AdamW's fused kernel on a GPU: libtorch 2.0 and later).

--blas-core prints only the OpenBLAS kernel set in use, for scripts that run another
program beside bertnode on the same kernels (the benchmarks).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if blasCore {
				fmt.Fprintln(out, nativeenv.Core())
				return nil
			}
			rev, modified := "unknown", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					switch {
					case s.Key == "vcs.revision":
						rev = s.Value
					case s.Key == "vcs.modified" && s.Value == "true":
						modified = " (modified)"
					}
				}
			}
			fmt.Fprintf(out, "bertnode %s%s, %s %s/%s\n", rev, modified, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(out, "BLAS: %s\n", nativeenv.Describe())
			fmt.Fprintf(out, "CUDA devices: %d\n", model.CUDADevices())
			v := model.LibtorchVersion()
			attn, adamw := model.FusedOps()
			fmt.Fprintf(out, "libtorch %d.%d: fused attention %s, fused AdamW on CUDA %s (both need libtorch 2.0 or later)\n",
				v/100, v%100, onOff(attn), onOff(adamw))
			return nil
		},
	}
	cmd.Flags().BoolVar(&blasCore, "blas-core", false, "print only the OpenBLAS kernel set in use (empty when the BLAS is not OpenBLAS)")
	return cmd
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
