#!/usr/bin/env bash
# The Python load benchmark (benches/python/grpc_load.py) against the release `bulkhead` binary, in
# the same venv as the Python walkthrough plus numpy. Arguments go to the benchmark (--ef, --clients,
# --passes, --breakdown, --json FILE, --dataset DIR). Results and the command belong in
# docs/BENCHMARKS.md; this is never part of scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/py-venv clients/python/requirements.txt benches/python/requirements.txt)"
if [ -z "${BULKHEAD_BIN:-}" ]; then
  . scripts/env.sh
  cargo build --release --quiet -p bulkhead-cli
  export BULKHEAD_BIN="$CARGO_TARGET_DIR/release/bulkhead"
fi
exec "$python" benches/python/grpc_load.py --bin "$BULKHEAD_BIN" "$@"
