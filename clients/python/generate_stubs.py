"""Regenerates the protobuf modules the `bulkhead-client` package ships, from `proto/bulkhead/v1/*.proto`.

The package commits them (`src/bulkhead_client/_pb/`), so that `pip install ./clients/python` needs no
code generator and works from any copy of the package directory; this script is how they are made,
and `--check` (run by the package's tests) fails when the committed files differ from what the
pinned grpcio-tools (requirements.txt) generates from the current proto/ files.

    python clients/python/generate_stubs.py           # rewrite src/bulkhead_client/_pb/
    python clients/python/generate_stubs.py --check   # exit 1 if they are stale

Only the messages are generated (`--python_out`, and `--pyi_out` for the type checker): the client
calls each RPC by its path with the messages' own serialisers (`bulkhead_client/_methods.py`), so
no grpc service stubs are needed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parents[1] / "proto"
OUT = HERE / "src" / "bulkhead_client" / "_pb"
# The generated files, by their name in OUT; protoc writes them under bulkhead/v1/.
GENERATED = ("bulkhead_pb2.py", "bulkhead_pb2.pyi")


def generate() -> dict[str, bytes]:
    """Runs protoc (grpcio-tools) over every proto file and returns the generated files' bytes."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "bulkhead" / "v1").glob("*.proto"))
    if protos != ["bulkhead/v1/bulkhead.proto"]:
        # Another file would need its own module here (and an import fix-up if it imported this one).
        raise RuntimeError(f"expected exactly proto/bulkhead/v1/bulkhead.proto, found {protos}")
    with tempfile.TemporaryDirectory(prefix="bulkhead-stubs-") as tmp:
        status = protoc.main(
            ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}", *protos]
        )
        if status != 0:
            raise RuntimeError(f"grpc_tools.protoc failed with status {status}")
        return {name: (Path(tmp) / "bulkhead" / "v1" / name).read_bytes() for name in GENERATED}


def stale() -> list[str]:
    """The committed files that differ from freshly generated ones (empty when all are current)."""
    fresh = generate()
    return [name for name, data in fresh.items() if not (OUT / name).is_file() or (OUT / name).read_bytes() != data]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed files are current")
    args = parser.parse_args()
    if args.check:
        names = stale()
        if names:
            print(f"stale generated files in {OUT}: {', '.join(names)}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{OUT}: current")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in generate().items():
        (OUT / name).write_bytes(data)
    print(f"wrote {', '.join(GENERATED)} into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
