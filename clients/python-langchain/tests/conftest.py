"""What the langchain-bulkhead tests share: one real `bulkhead serve` for the session
(clients/python/harness.py: 127.0.0.1, an ephemeral port, a fresh data directory, SIGTERM at the end)
and, for each test, a fresh tenant with an on-behalf-of tenant-admin key (to create collections), an on-behalf-of
writer key (the RAG backend's: writes, and searches naming the end user) and alice's own user-bound
key. The session ends by checking that no key reached the server's log.

The binary is $BULKHEAD_BIN, else the build cache's release binary (scripts/test-python.sh sets it).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import harness  # noqa: E402

from bulkhead_client import AdminClient, Client  # noqa: E402

SECRETS: list[str] = []
_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.BulkheadServer]:
    with harness.BulkheadServer(harness.default_binary(), tmp_path_factory.mktemp("bulkhead") / "data") as running:
        SECRETS.append(running.admin_token())
        yield running
        running.stop()
        log = running.log()
        assert not [s for s in SECRETS if s in log], "a credential reached the server log"


@pytest.fixture(scope="session")
def url(server: harness.BulkheadServer) -> str:
    return f"http://{server.address}"


@pytest.fixture(scope="session")
def admin(server: harness.BulkheadServer, url: str) -> Iterator[AdminClient]:
    with AdminClient(url, server.admin_token()) as client:
        yield client


@dataclass(repr=False)
class Tenant:
    """A fresh tenant's clients (their reprs never show a key)."""

    name: str
    owner: Client
    """Tenant-admin with the on-behalf-of right: creates collections (and from_texts searches)."""
    backend: Client
    """Writer with the on-behalf-of right: the RAG backend's key."""
    alice: Client
    """A reader key bound to user alice, group eng."""


@pytest.fixture
def tenant(admin: AdminClient, url: str) -> Iterator[Tenant]:
    name = f"lc-{next(_names)}"
    admin.create_tenant(name)

    def key(*args: object, **kwargs: object) -> str:
        token = admin.issue_key(name, *args, **kwargs).token  # type: ignore[arg-type]
        SECRETS.append(token)
        return token

    clients = Tenant(
        name,
        Client(url, key("tenant-admin", on_behalf_of=True)),
        Client(url, key("writer", on_behalf_of=True)),
        Client(url, key("reader", user=("alice", ["eng"]))),
    )
    yield clients
    for client in (clients.owner, clients.backend, clients.alice):
        client.close()
