#!/usr/bin/env bash
# The Python client's walkthrough (clients/python/walkthrough.py): pinned grpcio and grpcio-tools in
# the build cache's venv (scripts/py-venv), stubs generated from proto/ into a temporary directory,
# and a real `bulkhead serve` (the release binary) on 127.0.0.1 with an ephemeral port and a fresh
# data directory, stopped with SIGTERM at the end or on failure. scripts/test runs it after
# `cargo test`; set BULKHEAD_BIN to test another binary without building.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/py-venv clients/python/requirements.txt)"
if [ -z "${BULKHEAD_BIN:-}" ]; then
  . scripts/env.sh
  # A no-op after `cargo test --release --workspace`, which builds the binary; otherwise it makes
  # sure the walkthrough tests the sources in this tree.
  cargo build --release --quiet -p bulkhead-cli
  export BULKHEAD_BIN="$CARGO_TARGET_DIR/release/bulkhead"
fi
# The load benchmark is only compiled here (like `cargo bench --no-run`); it runs by hand.
"$python" -m py_compile benches/python/grpc_load.py
exec "$python" clients/python/walkthrough.py --bin "$BULKHEAD_BIN"
