# Sourced by the benchmarks that run PyTorch beside bertnode: torch_side FILE says whether
# FILE and Debian's torch ($PY, /usr/bin/python3) are there to run it, and why not.
PY=${PY:-/usr/bin/python3}
torch_side() {
	if [ ! -f "$1" ]; then
		echo "PyTorch side: $1 not found; bertnode's side only"
		return 1
	fi
	if ! "$PY" -c 'import torch' 2>/dev/null; then
		echo "PyTorch side: torch is not installed (apt-get install -y python3-torch); bertnode's side only"
		return 1
	fi
}
