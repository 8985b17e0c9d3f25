#!/usr/bin/env bash
# Runs the bulkhead-distance tests for aarch64 (the NEON kernels) under qemu user-mode emulation.
#
# Needs the Debian packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user, and the rustup
# target aarch64-unknown-linux-gnu. Missing packages are installed with apt-get when running as root;
# otherwise the script prints the command to run and exits 1. The linker and runner are configured in
# .cargo/config.toml.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "missing packages: ${missing[*]}" >&2
        echo "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi

exec cargo test -p bulkhead-distance --target aarch64-unknown-linux-gnu "$@"
