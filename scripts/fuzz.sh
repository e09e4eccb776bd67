#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another, for FUZZTIME each (the seed
# corpora already run in make test). go keeps what it finds under the package's
# testdata/fuzz/FuzzXxx/: a failing input stays there as a regression for go test.
#
#   scripts/fuzz.sh                      # every target, 60s each
#   FUZZTIME=5m PKGS=./tokenize/ scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
FUZZTIME=${FUZZTIME:-60s}
# go minimizes each input that finds new code for up to a minute by default, and
# counts none of it as fuzzing: FuzzApply (15 ms an input) ran 31 inputs in a minute
# that way, 3,900 in 30 s with minimizing bounded.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-1s}
PKGS=${PKGS:-./...}
failed=()
for pkg in $(go list $PKGS); do
	for target in $(go test "$pkg" -list '^Fuzz' | grep '^Fuzz' || true); do
		echo "== $pkg $target ($FUZZTIME)"
		if ! go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME"; then
			failed+=("$pkg $target")
		fi
	done
done
if ((${#failed[@]})); then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: every target ran $FUZZTIME without a failure"
