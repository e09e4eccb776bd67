# Sourced by the benchmark scripts: both sides of a comparison run on the OpenBLAS
# kernels bertnode runs with. bertnode names them itself where OpenBLAS's detection falls
# back below the CPU (internal/nativeenv); a PyTorch beside it must get the same ones.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
	[ -x bin/bertnode ] || go build -o bin/bertnode ./cmd/bertnode
	core=$(bin/bertnode version --blas-core)
	[ -n "$core" ] && export OPENBLAS_CORETYPE=$core
fi
echo "BLAS kernels for both sides: ${OPENBLAS_CORETYPE:-as OpenBLAS detects them (or not OpenBLAS)}"
