#!/usr/bin/env bash
# Builds and tests bertnode against libtorch 2.x on this CPU-only machine: Debian 13's
# libtorch-dev (2.6) in a chroot that debootstrap makes under build/trixie (root, and
# Debian's mirror). Debian 12's libtorch 1.13 stubs what only 2.x has and the GPU machine
# runs: fused attention (scaled_dot_product_attention) and the fused AdamW kernel, which
# 2.4 and later have for the CPU too. Here both run for real, against the op-by-op paths.
#
#   scripts/libtorch2-check.sh                 # the fused-op tests of package model
#   scripts/libtorch2-check.sh ./...           # the whole suite (go test arguments)
#   scripts/libtorch2-check.sh run 'scripts/bench-step.sh'   # a command, after the build
#
# The chroot has Debian 13's PyTorch (2.6, the same libtorch) as /usr/bin/python3's torch,
# and ../shared/bench read-only where this checkout has it, so the benchmark scripts run
# there beside their peer.
#
# The chroot, its Go module and build caches and the gotch adapted for 2.6 stay under
# build/trixie (about 3 GB), so a second run rebuilds only what changed. The working
# tree (tracked and untracked files that git does not ignore) is copied in on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "libtorch2-check: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }

root=$PWD/build/trixie
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
pkgs="libtorch-dev libopenblas0-openmp g++ make git wordnet-base iproute2 procps python3-torch"

if [ ! -x "$root/usr/bin/apt-get" ]; then
	command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
	echo "libtorch2-check: debootstrap trixie into $root"
	debootstrap --variant=minbase trixie "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
		{ tail -20 "$root.debootstrap.log" >&2; exit 1; }
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

goroot=$(go env GOROOT)
modcache=$(go env GOMODCACHE)
mounts=()
bind() { # bind SRC DST [ro]: mounted for this run, unmounted at exit
	mkdir -p "$2"
	mountpoint -q "$2" || mount --bind "$1" "$2"
	[ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
	mounts=("$2" "${mounts[@]}")
}
cleanup() { for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
fs() { # fs TYPE DST: a fresh filesystem for this run
	mkdir -p "$2"
	mountpoint -q "$2" || { mount -t "$1" "$1" "$2"; mounts=("$2" "${mounts[@]}"); }
}
# The root a mount point of its own, as ip netns needs (the tests make network
# namespaces), before the mounts inside it.
bind "$root" "$root"
fs proc "$root/proc"
fs sysfs "$root/sys"
fs tmpfs "$root/dev/shm"
bind "$goroot" "$root$goroot" ro
# Modules come from this machine's download cache, read-only, as a proxy: the chroot
# extracts its own copies, so nothing it does can touch this machine's module cache.
bind "$modcache/cache/download" "$root/hostmod" ro
[ ! -d ../shared/bench ] || bind "$(cd ../shared/bench && pwd)" "$root/shared/bench" ro

# USE_LIBUV=0: Debian's torch 2.6 is built without libuv, which torch.distributed's
# TCP rendezvous asks for by default (gloo's side of the all-reduce benchmark).
in_root() {
	chroot "$root" env -i HOME=/root PATH="$goroot/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		GOPROXY="file:///hostmod,$(go env GOPROXY)" GOFLAGS=-buildvcs=false \
		OMP_WAIT_POLICY=passive USE_LIBUV=0 bash -c "$1"
}
missing=$(in_root "for p in $pkgs; do dpkg-query -W -f='\${Status}' \$p 2>/dev/null | grep -q 'ok installed' || echo \$p; done")
if [ -n "$missing" ]; then
	echo "libtorch2-check: installing into the chroot:" $missing
	in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(echo $missing)" >/dev/null
fi
# This machine's trusted certificates (the module proxy's and the checksum database's,
# as this machine reaches them), after apt, whose ca-certificates would write over them.
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

# The tree as git sees it, build/ (the adapted gotch, the binary) kept from the last run.
mkdir -p "$root/src"
find "$root/src" -mindepth 1 -maxdepth 1 ! -name build ! -name bin -exec rm -rf {} +
git ls-files -co --exclude-standard | grep -v '^build/' | tar --ignore-failed-read -cf - -T - | tar -xf - -C "$root/src"

if [ "${1:-}" = run ]; then
	shift
	in_root "cd /src && make build && ./bin/bertnode version && $*"
	exit
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./model -run 'Fused|SplitDecay|FollowTheLibtorch' -v)
in_root "cd /src && make build && ./bin/bertnode version && go test -timeout 25m $(printf '%q ' "${args[@]}")"
