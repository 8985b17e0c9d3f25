"""Exceptions: one class per gRPC status code the server uses, each carrying the server's message.

The server's messages never carry secrets or another tenant's data (proto/bulkhead/v1/bulkhead.proto
says so), and these exceptions add none: the API key or admin token a client holds is never part of
an exception's text, repr or chained cause (the grpc error is dropped from the chain, since its debug
string is not ours to vouch for).
"""

from __future__ import annotations

import grpc


class BulkheadError(Exception):
    """A call the server (or the connection to it) refused. `code` is the gRPC status code, `message`
    the server's own words; `str()` shows both."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    points_written: int | None = None
    """Set by an upsert whose later batch failed: how many points its earlier batches wrote."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.points_written is not None:
            text += f" ({self.points_written} points of this upsert were written by its earlier batches)"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class Unauthenticated(BulkheadError):
    """The credential is missing, unknown, malformed, revoked or expired."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(BulkheadError):
    """The credential is valid but its role (or kind) may not make this call, or the key is locked."""

    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(BulkheadError):
    """The collection or point does not exist in the caller's tenant, or the principal may not read it
    (the server answers the same in every case)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(BulkheadError):
    """A collection or tenant of that name exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(BulkheadError):
    """The request is malformed or over a documented limit (docs/LIMITS.md); nothing changed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(BulkheadError):
    """Over a quota or a size limit. The rate, concurrency and request-memory refusals say "retry
    later" and are retried by the client (`retryable`); a storage quota or an oversized message is not."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retryable(self) -> bool:
        """Whether the server called the refusal temporary (it changed nothing either way)."""
        return "retry later" in self.message


class FailedPrecondition(BulkheadError):
    """The tenant's state forbids the call (a data key at its encryption limit: rotate it)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(BulkheadError):
    """The server could not be reached (or went away mid-call)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(BulkheadError):
    """The call's deadline passed (the client's timeout or the server's request deadline)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(BulkheadError):
    """The call was cancelled."""

    code = grpc.StatusCode.CANCELLED


class Internal(BulkheadError):
    """A failure inside the server, or stored data that failed its integrity check (DATA_LOSS)."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[BulkheadError]] = {
    cls.code: cls
    for cls in (
        Unauthenticated,
        PermissionDenied,
        NotFound,
        AlreadyExists,
        InvalidArgument,
        ResourceExhausted,
        FailedPrecondition,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Internal,
    )
}
_BY_CODE[grpc.StatusCode.DATA_LOSS] = Internal
_BY_CODE[grpc.StatusCode.OUT_OF_RANGE] = InvalidArgument
_BY_CODE[grpc.StatusCode.ABORTED] = FailedPrecondition


def from_rpc_error(error: grpc.RpcError) -> BulkheadError:
    """The exception for a failed call: its class by status code, the server's message as it is."""
    # A sync call's error is a grpc.Call, an asyncio call's a grpc.aio.AioRpcError: both have these.
    code_of, details_of = getattr(error, "code", None), getattr(error, "details", None)
    code = code_of() if callable(code_of) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = details_of() if callable(details_of) else None
    if not isinstance(details, str):
        details = None
    cls = _BY_CODE.get(code, BulkheadError)
    return cls(details or code.name.lower().replace("_", " "), code)
