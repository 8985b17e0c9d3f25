#!/usr/bin/env bash
# The Python client, bulkhead-client (clients/python), against a real `bulkhead serve`: the pinned
# packages of clients/python/requirements*.txt in the build cache's venv (scripts/py-venv), the
# package built into a wheel and installed without touching the network (setuptools comes from the
# venv, not from an isolated build environment), `mypy --strict` on it, its tests
# (clients/python/tests: each session starts the release binary on 127.0.0.1 with an ephemeral port
# and a fresh data directory, and stops it with SIGTERM) and the README's walkthrough
# (clients/python/walkthrough.py); then the framework stores, LangChain's and LlamaIndex's
# (scripts/test-python-frameworks.sh). scripts/test runs it after `cargo test`; set BULKHEAD_BIN to
# test another binary without building.
set -euo pipefail
cd "$(dirname "$0")/.."
# The framework stores' pins too, so that the venv is the same whichever step runs first.
python="$(scripts/py-venv clients/python/requirements.txt clients/python/requirements-dev.txt clients/requirements-frameworks.txt)"
if [ -z "${BULKHEAD_BIN:-}" ]; then
  . scripts/env.sh
  # A no-op after `cargo test --release --workspace`, which builds the binary; otherwise it makes
  # sure the tests run against the sources in this tree.
  cargo build --release --quiet -p bulkhead-cli
  export BULKHEAD_BIN="$CARGO_TARGET_DIR/release/bulkhead"
fi
# The load benchmark is only compiled here (like `cargo bench --no-run`); it runs by hand.
"$python" -m py_compile benches/python/grpc_load.py

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
pip=("$python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" wheel --no-build-isolation --no-deps --wheel-dir "$wheels" ./clients/python
"${pip[@]}" install --no-deps --force-reinstall "$wheels"/bulkhead_client-*.whl
echo "bulkhead-client: $(basename "$wheels"/bulkhead_client-*.whl) built and installed"

(cd clients/python && "$python" -m mypy --strict)
# From the package directory, so that the tests import the installed wheel, not src/. These tests
# drive asyncio with asyncio.run: pytest-asyncio (in the venv for the framework stores) stays off.
(cd clients/python && "$python" -m pytest -q -p no:cacheprovider -p no:asyncio tests)
"$python" clients/python/walkthrough.py --bin "$BULKHEAD_BIN"
exec scripts/test-python-frameworks.sh
