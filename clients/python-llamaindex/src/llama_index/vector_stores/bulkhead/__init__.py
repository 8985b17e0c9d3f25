"""llama-index-vector-stores-bulkhead: a LlamaIndex vector store on Bulkhead whose queries run on
behalf of an end user, so that a retriever built for alice returns only nodes alice may read.

    from bulkhead_client import Client
    from llama_index.vector_stores.bulkhead import BulkheadVectorStore

    store = BulkheadVectorStore(Client(url, api_key), "docs")
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retriever = index.as_retriever(vector_store_kwargs={"principal": ("alice", ["eng"])})
"""

from .base import ACL_GROUPS_KEY, ACL_USERS_KEY, AS_API_KEY, BulkheadVectorStore, MissingPrincipal
from .filters import SUPPORTED_OPERATORS, UnsupportedFilter, to_bulkhead_filter

__all__ = [
    "ACL_GROUPS_KEY",
    "ACL_USERS_KEY",
    "AS_API_KEY",
    "SUPPORTED_OPERATORS",
    "BulkheadVectorStore",
    "MissingPrincipal",
    "UnsupportedFilter",
    "to_bulkhead_filter",
]
