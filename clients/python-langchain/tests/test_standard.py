"""LangChain's own standard suite for vector stores (langchain-tests' VectorStoreIntegrationTests:
add, idempotent re-add by id, mutation, delete, get_by_ids, sync and async), run against a real
server with its DeterministicFakeEmbedding of 6 dimensions. The store is bound to an end user who
is in no ACL: the suite's documents have none, so they are tenant-wide and that user reads them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Tenant
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import EMBEDDING_SIZE, VectorStoreIntegrationTests

from langchain_bulkhead import BulkheadVectorStore


class TestBulkheadStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tenant: Tenant) -> Iterator[VectorStore]:  # type: ignore[override]
        tenant.owner.create_collection("standard", dimension=EMBEDDING_SIZE, metric="cosine")
        yield BulkheadVectorStore(tenant.backend, "standard", self.get_embeddings(), principal=("carol", ["staff"]))
