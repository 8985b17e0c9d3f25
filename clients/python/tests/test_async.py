"""The asyncio client against a real server: the same calls as the synchronous one, concurrently."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bulkhead_client import Acl, AlreadyExists, AsyncClient, F, NotFound, Point, Unauthenticated, where
from conftest import TenantKeys, remember


def test_every_method_from_asyncio(url: str, tenant: TenantKeys) -> None:
    async def scenario() -> None:
        async with AsyncClient(url, tenant.tenant_admin) as client:
            assert "redacted" in repr(client) and tenant.tenant_admin not in repr(client)
            docs = await client.create_collection("docs", 3)
            with pytest.raises(AlreadyExists):
                await docs.create(3)
            assert [c.name for c in await client.list_collections()] == ["docs"]
            assert (await docs.describe()).dimension == 3
            versions = await docs.upsert(
                [
                    Point("a", [1.0, 0.0, 0.0], text="hello", metadata={"lang": "en", "year": 2024}),
                    Point("b", np.array([0.0, 1.0, 0.0]), text="world", acl=Acl(users=["alice"])),
                ]
            )
            assert len(versions) == 2
            await docs.upsert_columns([f"p{i}" for i in range(1500)], np.ones((1500, 3)) * [0, 0, 1])
            assert await docs.count() == 1502
            # Many calls at once on one channel.
            counts = await asyncio.gather(*(docs.count() for _ in range(20)))
            assert counts == [1502] * 20
            got = await docs.get("a", with_vector=True)
            assert got.vector == [1.0, 0.0, 0.0] and got.metadata == {"lang": "en", "year": 2024}
            hits = await docs.search([1.0, 0.0, 0.0], k=2, filter=where(lang="en") | F.eq("year", 1))
            assert [h.id for h in hits] == ["a"] and hits[0].provenance.matched_by is None
            batch = await docs.search_batch([[1, 0, 0], [0, 1, 0]], k=1)
            assert [r[0].id for r in batch] == ["a", "b"]
            assert await docs.delete([f"p{i}" for i in range(1500)]) == 1500
            events = [e async for e in client.export_audit()]
            assert any(e.operation == "upsert" for e in events)
            await docs.drop()
            with pytest.raises(NotFound):
                await docs.count()
        async with AsyncClient(url, tenant.reader) as reader:
            hidden = reader.collection("docs")
            with pytest.raises(NotFound):
                await hidden.search([1.0, 0.0, 0.0], k=1, principal=("alice", ["eng"]))
        bogus = remember("bk_" + "5" * 40)
        async with AsyncClient(url, bogus) as nobody:
            with pytest.raises(Unauthenticated) as refused:
                await nobody.list_collections()
            assert bogus not in repr(refused.value) + str(refused.value)

    asyncio.run(scenario())


def test_principals_from_asyncio(url: str, tenant: TenantKeys) -> None:
    async def scenario() -> None:
        async with AsyncClient(url, tenant.tenant_admin) as admin:
            docs = await admin.create_collection("docs", 2)
            await docs.upsert([Point("mine", [1.0, 0.0], acl=Acl(users=["alice"])), Point("all", [0.9, 0.1])])
        async with AsyncClient(url, tenant.reader) as reader:
            docs = reader.collection("docs")
            as_bob, as_alice = await asyncio.gather(
                docs.search([1.0, 0.0], k=5, principal="bob"), docs.search([1.0, 0.0], k=5, principal="alice")
            )
            assert [h.id for h in as_bob] == ["all"] and [h.id for h in as_alice] == ["mine", "all"]
            assert (await docs.get("mine", principal="alice")).id == "mine"

    asyncio.run(scenario())
