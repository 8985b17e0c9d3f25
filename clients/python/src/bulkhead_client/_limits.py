"""The server's documented limits the client checks or batches by, as docs/LIMITS.md names them
(`tests/test_limits.py` fails if this file and that table disagree)."""

from __future__ import annotations

MAX_BATCH_POINTS = 1024
"""Most points in one upsert, most ids in one delete."""
MAX_BATCH_BYTES = 33554432
"""Most bytes (ids, vectors, texts, metadata, URIs, ACLs) in one upsert batch, by the library's count."""
MAX_MESSAGE_BYTES = 67108864
"""Largest gRPC message: an Upsert request, and every response."""
MAX_REQUEST_ELEMENTS = 262144
"""Most elements (nested messages, map entries, repeated strings) of one request message."""
MAX_SEARCH_MESSAGE_BYTES = 4194304
"""Largest Search request; also the bound on a filter's encoded size."""
MAX_SEARCH_BATCH_MESSAGE_BYTES = 8388608
"""Largest SearchBatch request."""
MAX_DELETE_MESSAGE_BYTES = 524288
"""Largest Delete request."""
MAX_SEARCH_BATCH = 64
"""Most queries in one SearchBatch call."""
MAX_K = 1000
MAX_EF = 4096
MAX_FILTER_DEPTH = 8
"""Deepest nesting of and/or/not (a single condition has depth 1)."""
MAX_FILTER_CONDITIONS = 64
"""Most conditions in one filter (a tenant's policy may set fewer)."""
MAX_FILTER_NODES = 256
"""Most nodes of any kind in one filter."""
MAX_FILTER_LIST = 1024
"""Most values of one In condition, and most children of one and/or."""
MAX_FILTER_VALUE_BYTES = 1024
"""Longest keyword in a filter, in bytes."""
MAX_METADATA_KEY_BYTES = 128
"""Longest metadata field name, in bytes (also for filters)."""
MAX_PRINCIPAL_BYTES = 256
"""Longest user or group name, in bytes."""
MAX_PRINCIPAL_GROUPS = 256
"""Most groups of a search principal."""
MAX_AUDIT_PAGE = 1000
"""Most audit events in one ExportAudit page."""
