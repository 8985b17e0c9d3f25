"""What the package's tests share: one real `bulkhead serve` (clients/python/harness.py: 127.0.0.1, an
ephemeral port, a fresh data directory, SIGTERM at the end) for the whole session, an `AdminClient` on
it, and fresh tenants with their keys. Every credential the tests make is recorded, and the session
ends by checking that none of them reached the server's log.

The binary is $BULKHEAD_BIN, else the build cache's release binary (scripts/test-python.sh sets it).
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

from bulkhead_client import AdminClient, Client  # noqa: E402

SECRETS: list[str] = []
_names = itertools.count()


def remember(secret: str) -> str:
    """Records a credential, so that the session can check the server never logged it."""
    SECRETS.append(secret)
    return secret


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.BulkheadServer]:
    root = tmp_path_factory.mktemp("bulkhead")
    data = root / "data"
    # The approver token (break-glass grants' second credential): a file of its own, mode 0600.
    approver = root / "approver.token"
    fd = os.open(approver, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("bkp_" + secrets.token_hex(32))
    extra = ("--approver-token-file", str(approver))
    with harness.BulkheadServer(harness.default_binary(), data, extra) as running:
        remember(running.admin_token())
        remember(approver.read_text())
        running.approver_token_file = approver
        yield running
        running.stop()
        log = running.log()
        leaked = [i for i, s in enumerate(SECRETS) if s in log]
        assert not leaked, f"{len(leaked)} credentials reached the server log"


@pytest.fixture(scope="session")
def url(server: harness.BulkheadServer) -> str:
    return f"http://{server.address}"


@pytest.fixture(scope="session")
def admin(server: harness.BulkheadServer, url: str) -> Iterator[AdminClient]:
    with AdminClient(url, server.admin_token()) as client:
        yield client


@dataclass(repr=False)
class TenantKeys:
    """A fresh tenant and its keys: tenant admin, writer, on-behalf-of reader, and alice's own key
    (user alice, group eng). Its repr names the tenant only (pytest prints a failed test's locals)."""

    name: str
    tenant_admin: str
    writer: str
    reader: str
    reader_id: str
    alice: str

    def __repr__(self) -> str:
        return f"TenantKeys({self.name!r}, keys=<redacted>)"


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@pytest.fixture
def new_tenant(admin: AdminClient) -> Callable[[], TenantKeys]:
    def make() -> TenantKeys:
        name = unique("t")
        admin.create_tenant(name)
        reader = admin.issue_key(name, "reader", label="tests", on_behalf_of=True)
        return TenantKeys(
            name=name,
            tenant_admin=remember(admin.issue_key(name, "tenant-admin").token),
            writer=remember(admin.issue_key(name, "writer").token),
            reader=remember(reader.token),
            reader_id=reader.key_id,
            alice=remember(admin.issue_key(name, "reader", user=("alice", ["eng"])).token),
        )

    return make


@pytest.fixture
def tenant(new_tenant: Callable[[], TenantKeys]) -> TenantKeys:
    return new_tenant()


@pytest.fixture
def client(url: str, tenant: TenantKeys) -> Iterator[Client]:
    """The tenant admin's client."""
    with Client(url, tenant.tenant_admin) as c:
        yield c
