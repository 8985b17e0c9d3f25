"""langchain-bulkhead: a LangChain vector store on Bulkhead whose searches run on behalf of an end
user, so that a retriever built for alice returns only what alice may read.

    from bulkhead_client import Client
    from langchain_bulkhead import BulkheadVectorStore

    store = BulkheadVectorStore(Client(url, api_key), "docs", embeddings)
    retriever = store.for_user("alice", groups=["eng"]).as_retriever(search_kwargs={"filter": {"lang": "en"}})
"""

from .filters import SUPPORTED_OPERATORS, UnsupportedFilter, to_bulkhead_filter
from .vectorstores import ACL_GROUPS_KEY, ACL_USERS_KEY, AS_API_KEY, BulkheadVectorStore, MissingPrincipal

__version__ = "0.1.0"

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
