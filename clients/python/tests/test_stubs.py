"""The committed protobuf modules match proto/, and the client's RPC table covers every RPC."""

from __future__ import annotations

import sys
from pathlib import Path

from bulkhead_client import _transport
from bulkhead_client._pb import bulkhead_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import generate_stubs  # noqa: E402


def test_committed_stubs_match_what_grpcio_tools_generates_from_proto() -> None:
    assert generate_stubs.stale() == [], "run clients/python/generate_stubs.py and commit the result"


def test_the_installed_package_carries_the_same_stubs() -> None:
    # The tests run against the installed package: its messages are the committed ones.
    fresh = generate_stubs.generate()
    installed = Path(pb.__file__).read_bytes()
    assert installed == fresh["bulkhead_pb2.py"]


def test_every_rpc_of_both_services_is_in_the_client_table_with_its_types() -> None:
    for service, table in (("DataPlane", _transport.DataPlane), ("Admin", _transport.Admin)):
        descriptor = pb.DESCRIPTOR.services_by_name[service]
        methods = {name: m for name, m in vars(table).items() if isinstance(m, _transport.Method)}
        assert sorted(methods) == sorted(m.name for m in descriptor.methods)
        for rpc in descriptor.methods:
            method = methods[rpc.name]
            assert method.path == f"/bulkhead.v1.{service}/{rpc.name}"
            assert method.request.DESCRIPTOR.full_name == rpc.input_type.full_name
            assert method.response.DESCRIPTOR.full_name == rpc.output_type.full_name
