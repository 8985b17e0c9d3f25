#!/usr/bin/env bash
# Checks scripts/package: builds the tarball into a temporary directory, checks its checksum and
# contents, unpacks it and runs the packaged binary (`--version`, and `bench` on a small random
# dataset), and verifies the systemd unit with systemd-analyze (pointed at the unpacked binary)
# where systemd-analyze exists.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tarball=$(DIST_DIR="$work/dist" scripts/package)
(cd "$work/dist" && sha256sum --check --quiet "$(basename "$tarball").sha256")
name=$(basename "$tarball" .tar.gz)
listing=$(tar -tzf "$tarball")
for file in bin/bulkhead etc/bulkhead.example.toml systemd/bulkhead.service README.md docs/OPERATIONS.md \
    docs/SECURITY.md docs/LIMITS.md docs/CLI.md; do
  grep -qx "$name/$file" <<<"$listing" || { echo "package: $file missing from $tarball" >&2; exit 1; }
done
tar -C "$work" -xzf "$tarball"
bin="$work/$name/bin/bulkhead"
"$bin" --version

# 2,000 base and 20 query vectors of 16 dimensions (fvecs: a little-endian dimension, then the floats).
python3 - "$work" <<'PY'
import random, struct, sys
random.seed(7)
for name, rows in (("base", 2000), ("query", 20)):
    with open(f"{sys.argv[1]}/{name}.fvecs", "wb") as f:
        for _ in range(rows):
            f.write(struct.pack("<i16f", 16, *(random.uniform(-1, 1) for _ in range(16))))
PY
"$bin" --data-dir "$work/data" bench --base "$work/base.fvecs" --queries "$work/query.fvecs" --metric l2 \
  > "$work/bench.txt"
grep -q "recall" "$work/bench.txt" || { cat "$work/bench.txt"; echo "package: bench printed no recall" >&2; exit 1; }

if command -v systemd-analyze > /dev/null; then
  sed "s|/usr/local/bin/bulkhead|$bin|" "$work/$name/systemd/bulkhead.service" > "$work/bulkhead.service"
  systemd-analyze verify "$work/bulkhead.service"
else
  echo "package: systemd-analyze not installed; the unit file was not verified"
fi
echo "package: $name checked"
