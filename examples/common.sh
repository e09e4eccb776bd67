# Sourced by the example scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
[ -d "$SHARED" ] || { echo "no data at $SHARED: set SHARED=/path/to/shared/data" >&2; exit 1; }
[ -x bin/bertnode ] || make build
BERTNODE=./bin/bertnode
