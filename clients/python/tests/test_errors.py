"""An exception class per status code, with the server's message; retries of temporary refusals and of
unreachable servers, bounded; and the credential never in any exception's text, repr or traceback."""

from __future__ import annotations

import socket
import time
import traceback

import grpc
import pytest

from bulkhead_client import (
    AdminClient,
    AlreadyExists,
    BulkheadError,
    Cancelled,
    Internal,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Point,
    Policy,
    Quotas,
    ResourceExhausted,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from bulkhead_client._errors import from_rpc_error
from bulkhead_client._transport import Method
from conftest import TenantKeys, remember


def no_secret_in(error: BaseException, *secrets: str) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error) + str(error) + repr(error.args)
    for secret in secrets:
        assert secret not in text


def test_each_status_code_has_its_exception_with_the_servers_message(
    client: Client, url: str, tenant: TenantKeys, admin: AdminClient
) -> None:
    docs = client.create_collection("docs", 3)
    with pytest.raises(AlreadyExists) as exists:
        docs.create(3)
    assert exists.value.code == grpc.StatusCode.ALREADY_EXISTS and "exists" in exists.value.message
    with pytest.raises(NotFound) as missing:
        client.collection("nope").count()
    assert "not found" in missing.value.message and str(missing.value).startswith("NOT_FOUND: ")
    with pytest.raises(InvalidArgument) as invalid:
        docs.upsert([Point("a", [1.0, 2.0])])  # two dimensions for a three-dimension collection
    assert "dimension" in invalid.value.message
    with Client(url, tenant.reader) as reader:
        with pytest.raises(PermissionDenied) as denied:
            reader.collection("docs").upsert([Point("a", [1.0, 0.0, 0.0])])
    no_secret_in(denied.value, tenant.reader)
    with pytest.raises(PermissionDenied):
        AdminClient(url, tenant.tenant_admin).list_tenants()
    with pytest.raises(InvalidArgument, match="expected_version"):
        admin.set_policy(tenant.name, Policy(max_k=10), expected_version=999)


def test_a_server_that_never_answers_gives_deadline_exceeded() -> None:
    # A listener that accepts connections and never says a word: the call's deadline passes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        retry = CountingRetry()
        with Client(f"http://127.0.0.1:{silent.getsockname()[1]}", "bk_unused", timeout=0.3, retry=retry) as client:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                client.collection("docs").count()
            assert 0.25 < time.monotonic() - started < 5 and retry.seen == [DeadlineExceeded]


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    "code,cls",
    [
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, Cancelled),
        (grpc.StatusCode.INTERNAL, Internal),
        (grpc.StatusCode.DATA_LOSS, Internal),
        (grpc.StatusCode.UNIMPLEMENTED, BulkheadError),
    ],
)
def test_every_status_code_maps_to_its_class(code: grpc.StatusCode, cls: type[BulkheadError]) -> None:
    error = from_rpc_error(FakeRpcError(code, "the server's words"))
    assert type(error) is cls and error.code == code and error.message == "the server's words"
    assert str(error) == f"{code.name}: the server's words"


def test_the_key_is_never_in_exception_text_repr_or_traceback(url: str, tenant: TenantKeys) -> None:
    bogus = remember("bk_" + "7" * 40)
    with Client(url, bogus) as client:
        assert bogus not in repr(client) and "redacted" in repr(client)
        with pytest.raises(Unauthenticated) as refused:
            client.list_collections()
        no_secret_in(refused.value, bogus)
        assert refused.value.__cause__ is None
    with Client(url, tenant.tenant_admin) as client:
        for call in (
            lambda: client.collection("nope").describe(),
            lambda: client.collection("nope").upsert([Point("a", [1.0])]),
            lambda: client.collection("nope").search([1.0], k=1, filter={"lang": "en"}, principal="bob"),
        ):
            with pytest.raises(BulkheadError) as error:
                call()
            no_secret_in(error.value, tenant.tenant_admin)
    with AdminClient(url, bogus) as admin:
        assert bogus not in repr(admin)
        with pytest.raises(Unauthenticated) as refused:
            admin.list_tenants()
        no_secret_in(refused.value, bogus)


def test_the_issued_token_is_not_in_the_repr(admin: AdminClient, tenant: TenantKeys) -> None:
    issued = admin.issue_key(tenant.name, "reader")
    remember(issued.token)
    assert issued.token.startswith("bk_") and issued.token not in repr(issued) and issued.key_id in repr(issued)
    assert issued.token not in repr(admin.list_keys(tenant.name))


class CountingRetry(RetryPolicy):
    """A retry policy that records the errors it was asked about."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        object.__setattr__(self, "seen", [])

    def should_retry(self, error: BulkheadError, method: Method, attempt: int) -> bool:  # type: ignore[type-arg]
        self.seen.append(type(error))  # type: ignore[attr-defined]
        return super().should_retry(error, method, attempt)


def test_a_tenants_request_rate_quota_is_retried_with_backoff(
    admin: AdminClient, url: str, tenant: TenantKeys
) -> None:
    with Client(url, tenant.tenant_admin) as client:
        docs = client.create_collection("docs", 2)
    current = admin.get_policy(tenant.name)
    admin.set_policy(tenant.name, Policy(quotas=Quotas(requests_per_second=3)), expected_version=current.version)
    # Without retries, a burst is refused as temporary...
    with Client(url, tenant.tenant_admin, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ResourceExhausted) as refused:
            for _ in range(20):
                client.collection("docs").count()
        assert refused.value.retryable and "requests_per_second" in refused.value.message
    # ...and with them, every call of the burst (an upsert across batches too) goes through.
    retry = CountingRetry(max_attempts=30, initial_backoff=0.05, max_backoff=0.5)
    with Client(url, tenant.tenant_admin, retry=retry) as client:
        docs = client.collection("docs")
        started = time.monotonic()
        counts = [docs.count() for _ in range(8)]
        versions = docs.upsert(Point(f"p{i}", [1.0, 0.0]) for i in range(2100))
        assert counts == [0] * 8 and len(versions) == 2100 and docs.count() == 2100
        assert ResourceExhausted in retry.seen and time.monotonic() - started > 1.0
    admin.set_policy(tenant.name, Policy(), expected_version=current.version + 1)


def test_a_storage_quota_is_not_retried(admin: AdminClient, url: str, tenant: TenantKeys) -> None:
    current = admin.get_policy(tenant.name)
    admin.set_policy(tenant.name, Policy(quotas=Quotas(max_vectors=5)), expected_version=current.version)
    retry = CountingRetry(max_attempts=5)
    with Client(url, tenant.tenant_admin, retry=retry) as client:
        docs = client.create_collection("docs", 2)
        docs.upsert([Point(f"p{i}", [1.0, 0.0]) for i in range(5)])
        with pytest.raises(ResourceExhausted) as over:
            docs.upsert([Point("p5", [1.0, 0.0])])
    assert not over.value.retryable and "max_vectors" in over.value.message
    assert retry.seen == [ResourceExhausted]


def test_an_unreachable_server_is_retried_for_idempotent_calls_only() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        retry = CountingRetry(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
        with Client(f"http://127.0.0.1:{port}", "bk_unused", retry=retry, timeout=5) as client:
            with pytest.raises(Unavailable):
                client.collection("docs").count()
            assert retry.seen == [Unavailable] * 3
            retry.seen.clear()  # type: ignore[attr-defined]
            with pytest.raises(Unavailable):
                client.create_collection("docs", 3)
            assert retry.seen == [Unavailable]
