# Sourced by the scripts after scripts/setup.
#
# One build directory outside the clone, kept between runs (override with CARGO_TARGET_DIR), and a
# prebuilt RocksDB library (scripts/rocksdb) so that RocksDB's C++ is compiled once per machine, not
# once per clone or per change in the dependency graph. A machine with neither simply builds both.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bulkhead/target}"
mkdir -p "$CARGO_TARGET_DIR"
ROCKSDB_LIB_DIR="$(scripts/rocksdb)"
export ROCKSDB_LIB_DIR
export ROCKSDB_STATIC=1
