#!/usr/bin/env bash
# The framework stores against a real `bulkhead serve`: langchain-bulkhead (clients/python-langchain,
# a LangChain VectorStore) and llama-index-vector-stores-bulkhead (clients/python-llamaindex, a
# LlamaIndex vector store). The pinned packages of clients/requirements-frameworks.txt go into the
# build cache's venv (scripts/py-venv), each package is built into a wheel and installed without
# touching the network, `mypy --strict` checks it, and its tests run (LangChain's standard vector
# store suite and our own, with the frameworks' fake embeddings; each session starts the release
# binary on 127.0.0.1 with an ephemeral port). scripts/test-python.sh runs it last, after it has
# installed bulkhead-client into the same venv and exported BULKHEAD_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BULKHEAD_BIN:?set BULKHEAD_BIN (scripts/test-python.sh does)}"
python="$(scripts/py-venv clients/python/requirements.txt clients/python/requirements-dev.txt clients/requirements-frameworks.txt)"
"$python" -c "import bulkhead_client" 2>/dev/null || {
  echo "bulkhead-client is not installed in the venv: run scripts/test-python.sh" >&2
  exit 1
}

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
pip=("$python" -m pip --disable-pip-version-check --quiet)
for package in python-langchain python-llamaindex; do
  "${pip[@]}" wheel --no-build-isolation --no-deps --wheel-dir "$wheels" "./clients/$package"
done
"${pip[@]}" install --no-deps --force-reinstall "$wheels"/*.whl
echo "framework stores: $(cd "$wheels" && echo *.whl) built and installed"

for package in python-langchain python-llamaindex; do
  # From the package directory, so that the tests import the installed wheel, not src/.
  (cd "clients/$package" && "$python" -m mypy --strict && "$python" -m pytest -q -p no:cacheprovider tests)
done
