from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
    METRIC_DOT: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]

class MatchReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_REASON_UNSPECIFIED: _ClassVar[MatchReason]
    MATCH_REASON_USER: _ClassVar[MatchReason]
    MATCH_REASON_GROUP: _ClassVar[MatchReason]
    MATCH_REASON_TENANT_WIDE: _ClassVar[MatchReason]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_READER: _ClassVar[Role]
    ROLE_WRITER: _ClassVar[Role]
    ROLE_TENANT_ADMIN: _ClassVar[Role]
METRIC_UNSPECIFIED: Metric
METRIC_COSINE: Metric
METRIC_DOT: Metric
METRIC_L2: Metric
MATCH_REASON_UNSPECIFIED: MatchReason
MATCH_REASON_USER: MatchReason
MATCH_REASON_GROUP: MatchReason
MATCH_REASON_TENANT_WIDE: MatchReason
ROLE_UNSPECIFIED: Role
ROLE_READER: Role
ROLE_WRITER: Role
ROLE_TENANT_ADMIN: Role

class Collection(_message.Message):
    __slots__ = ("name", "dimension", "metric", "created_ms", "index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    created_ms: int
    index: IndexStatus
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., created_ms: _Optional[int] = ..., index: _Optional[_Union[IndexStatus, _Mapping]] = ...) -> None: ...

class IndexStatus(_message.Message):
    __slots__ = ("loaded", "graph_points", "delta_points", "building", "segments")
    LOADED_FIELD_NUMBER: _ClassVar[int]
    GRAPH_POINTS_FIELD_NUMBER: _ClassVar[int]
    DELTA_POINTS_FIELD_NUMBER: _ClassVar[int]
    BUILDING_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    loaded: bool
    graph_points: int
    delta_points: int
    building: bool
    segments: int
    def __init__(self, loaded: _Optional[bool] = ..., graph_points: _Optional[int] = ..., delta_points: _Optional[int] = ..., building: _Optional[bool] = ..., segments: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dimension", "metric")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeywordList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class MetaValue(_message.Message):
    __slots__ = ("keyword", "keywords", "number", "flag")
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    keyword: str
    keywords: KeywordList
    number: float
    flag: bool
    def __init__(self, keyword: _Optional[str] = ..., keywords: _Optional[_Union[KeywordList, _Mapping]] = ..., number: _Optional[float] = ..., flag: _Optional[bool] = ...) -> None: ...

class Acl(_message.Message):
    __slots__ = ("users", "groups")
    USERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "vector", "text", "metadata", "source_uri", "acl")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetaValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetaValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    ACL_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    text: str
    metadata: _containers.MessageMap[str, MetaValue]
    source_uri: str
    acl: Acl
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, MetaValue]] = ..., source_uri: _Optional[str] = ..., acl: _Optional[_Union[Acl, _Mapping]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, versions: _Optional[_Iterable[int]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("user", "groups")
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "id", "principal", "with_vector")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    principal: Principal
    with_vector: bool
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., with_vector: _Optional[bool] = ...) -> None: ...

class StoredPoint(_message.Message):
    __slots__ = ("id", "vector", "text", "metadata", "source_uri", "version", "key_generation")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetaValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetaValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    text: str
    metadata: _containers.MessageMap[str, MetaValue]
    source_uri: str
    version: int
    key_generation: int
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, MetaValue]] = ..., source_uri: _Optional[str] = ..., version: _Optional[int] = ..., key_generation: _Optional[int] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("point",)
    POINT_FIELD_NUMBER: _ClassVar[int]
    point: StoredPoint
    def __init__(self, point: _Optional[_Union[StoredPoint, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("eq", "one_of", "range")
    EQ_FIELD_NUMBER: _ClassVar[int]
    ONE_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    AND_FIELD_NUMBER: _ClassVar[int]
    OR_FIELD_NUMBER: _ClassVar[int]
    NOT_FIELD_NUMBER: _ClassVar[int]
    eq: Equals
    one_of: OneOf
    range: Range
    def __init__(self, eq: _Optional[_Union[Equals, _Mapping]] = ..., one_of: _Optional[_Union[OneOf, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., **kwargs) -> None: ...

class Equals(_message.Message):
    __slots__ = ("field", "keyword", "number", "flag")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    field: str
    keyword: str
    number: float
    flag: bool
    def __init__(self, field: _Optional[str] = ..., keyword: _Optional[str] = ..., number: _Optional[float] = ..., flag: _Optional[bool] = ...) -> None: ...

class OneOf(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("field", "min", "max")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    field: str
    min: float
    max: float
    def __init__(self, field: _Optional[str] = ..., min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class FilterList(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vector", "k", "ef", "filter", "principal")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    ef: int
    filter: Filter
    principal: Principal
    def __init__(self, collection: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., ef: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata", "source_uri", "version", "key_generation", "matched_by", "acl_fingerprint", "delta", "segment_generation", "policy_version")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetaValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetaValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KEY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_BY_FIELD_NUMBER: _ClassVar[int]
    ACL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata: _containers.MessageMap[str, MetaValue]
    source_uri: str
    version: int
    key_generation: int
    matched_by: MatchReason
    acl_fingerprint: bytes
    delta: bool
    segment_generation: int
    policy_version: int
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, MetaValue]] = ..., source_uri: _Optional[str] = ..., version: _Optional[int] = ..., key_generation: _Optional[int] = ..., matched_by: _Optional[_Union[MatchReason, str]] = ..., acl_fingerprint: _Optional[bytes] = ..., delta: _Optional[bool] = ..., segment_generation: _Optional[int] = ..., policy_version: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class BatchQuery(_message.Message):
    __slots__ = ("vector", "k", "ef", "filter", "principal")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    ef: int
    filter: Filter
    principal: Principal
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., ef: _Optional[int] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "queries")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedCompositeFieldContainer[BatchQuery]
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[BatchQuery, _Mapping]]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "uid", "created_ms", "placement")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: str
    created_ms: int
    placement: str
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[str] = ..., created_ms: _Optional[int] = ..., placement: _Optional[str] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("name", "tier")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    name: str
    tier: str
    def __init__(self, name: _Optional[str] = ..., tier: _Optional[str] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ...) -> None: ...

class DescribeTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTenantRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTenantResponse(_message.Message):
    __slots__ = ("revoked_keys",)
    REVOKED_KEYS_FIELD_NUMBER: _ClassVar[int]
    revoked_keys: int
    def __init__(self, revoked_keys: _Optional[int] = ...) -> None: ...

class MoveTenantRequest(_message.Message):
    __slots__ = ("tenant", "tier")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    tier: str
    def __init__(self, tenant: _Optional[str] = ..., tier: _Optional[str] = ...) -> None: ...

class MoveTenantResponse(_message.Message):
    __slots__ = ("tier", "moved", "copied", "rounds")
    TIER_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    moved: bool
    copied: int
    rounds: int
    def __init__(self, tier: _Optional[str] = ..., moved: _Optional[bool] = ..., copied: _Optional[int] = ..., rounds: _Optional[int] = ...) -> None: ...

class RevokeAllApiKeysRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class RevokeAllApiKeysResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class ExportTenantRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ArchiveChunk(_message.Message):
    __slots__ = ("data", "summary")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    summary: ExportTenantSummary
    def __init__(self, data: _Optional[bytes] = ..., summary: _Optional[_Union[ExportTenantSummary, _Mapping]] = ...) -> None: ...

class ExportTenantSummary(_message.Message):
    __slots__ = ("archive_id", "points", "records", "bytes")
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    archive_id: str
    points: int
    records: int
    bytes: int
    def __init__(self, archive_id: _Optional[str] = ..., points: _Optional[int] = ..., records: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ImportTenantRequest(_message.Message):
    __slots__ = ("start", "chunk")
    START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    start: ImportTenantStart
    chunk: bytes
    def __init__(self, start: _Optional[_Union[ImportTenantStart, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ImportTenantStart(_message.Message):
    __slots__ = ("new_name", "tier")
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    new_name: str
    tier: str
    def __init__(self, new_name: _Optional[str] = ..., tier: _Optional[str] = ...) -> None: ...

class ImportTenantResponse(_message.Message):
    __slots__ = ("tenant", "archive_id", "rekeyed", "points", "records", "index_records", "bytes")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_ID_FIELD_NUMBER: _ClassVar[int]
    REKEYED_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    tenant: Tenant
    archive_id: str
    rekeyed: bool
    points: int
    records: int
    index_records: int
    bytes: int
    def __init__(self, tenant: _Optional[_Union[Tenant, _Mapping]] = ..., archive_id: _Optional[str] = ..., rekeyed: _Optional[bool] = ..., points: _Optional[int] = ..., records: _Optional[int] = ..., index_records: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class RotateTenantKeyRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class GetMoveStatusRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class MoveStatus(_message.Message):
    __slots__ = ("running", "from_tier", "to_tier", "copied", "rounds", "switched")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FROM_TIER_FIELD_NUMBER: _ClassVar[int]
    TO_TIER_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SWITCHED_FIELD_NUMBER: _ClassVar[int]
    running: bool
    from_tier: str
    to_tier: str
    copied: int
    rounds: int
    switched: bool
    def __init__(self, running: _Optional[bool] = ..., from_tier: _Optional[str] = ..., to_tier: _Optional[str] = ..., copied: _Optional[int] = ..., rounds: _Optional[int] = ..., switched: _Optional[bool] = ...) -> None: ...

class GetRotationStatusRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class RotationStatus(_message.Message):
    __slots__ = ("running", "key_generation", "done", "total")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    KEY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    running: bool
    key_generation: int
    done: int
    total: int
    def __init__(self, running: _Optional[bool] = ..., key_generation: _Optional[int] = ..., done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class RotateMasterKeyRequest(_message.Message):
    __slots__ = ("new_key_file",)
    NEW_KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    new_key_file: str
    def __init__(self, new_key_file: _Optional[str] = ...) -> None: ...

class RotateMasterKeyResponse(_message.Message):
    __slots__ = ("master_version",)
    MASTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    master_version: int
    def __init__(self, master_version: _Optional[int] = ...) -> None: ...

class UserBinding(_message.Message):
    __slots__ = ("user", "groups")
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class IssueApiKeyRequest(_message.Message):
    __slots__ = ("tenant", "role", "label", "expires_ms", "on_behalf_of", "user")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    role: Role
    label: str
    expires_ms: int
    on_behalf_of: bool
    user: UserBinding
    def __init__(self, tenant: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., label: _Optional[str] = ..., expires_ms: _Optional[int] = ..., on_behalf_of: _Optional[bool] = ..., user: _Optional[_Union[UserBinding, _Mapping]] = ...) -> None: ...

class IssueApiKeyResponse(_message.Message):
    __slots__ = ("token", "key_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    key_id: str
    def __init__(self, token: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("key_id", "role", "label", "created_ms", "expires_ms", "revoked", "user", "on_behalf_of", "locked", "grant_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    role: Role
    label: str
    created_ms: int
    expires_ms: int
    revoked: bool
    user: UserBinding
    on_behalf_of: bool
    locked: bool
    grant_id: str
    def __init__(self, key_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., label: _Optional[str] = ..., created_ms: _Optional[int] = ..., expires_ms: _Optional[int] = ..., revoked: _Optional[bool] = ..., user: _Optional[_Union[UserBinding, _Mapping]] = ..., on_behalf_of: _Optional[bool] = ..., locked: _Optional[bool] = ..., grant_id: _Optional[str] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("tenant", "key_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key_id: str
    def __init__(self, tenant: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IssueOwnApiKeyRequest(_message.Message):
    __slots__ = ("role", "label", "expires_ms", "on_behalf_of", "user")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    role: Role
    label: str
    expires_ms: int
    on_behalf_of: bool
    user: UserBinding
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., label: _Optional[str] = ..., expires_ms: _Optional[int] = ..., on_behalf_of: _Optional[bool] = ..., user: _Optional[_Union[UserBinding, _Mapping]] = ...) -> None: ...

class ListOwnApiKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeOwnApiKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class AccessGrant(_message.Message):
    __slots__ = ("grant_id", "tenant", "reason", "requested_ms", "expires_ms", "approved_ms", "key_id", "revoked_ms", "state", "role", "tenant_imported_ms", "operator_revoked_keys_ms")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_IMPORTED_MS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_REVOKED_KEYS_MS_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    tenant: str
    reason: str
    requested_ms: int
    expires_ms: int
    approved_ms: int
    key_id: str
    revoked_ms: int
    state: str
    role: Role
    tenant_imported_ms: int
    operator_revoked_keys_ms: int
    def __init__(self, grant_id: _Optional[str] = ..., tenant: _Optional[str] = ..., reason: _Optional[str] = ..., requested_ms: _Optional[int] = ..., expires_ms: _Optional[int] = ..., approved_ms: _Optional[int] = ..., key_id: _Optional[str] = ..., revoked_ms: _Optional[int] = ..., state: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., tenant_imported_ms: _Optional[int] = ..., operator_revoked_keys_ms: _Optional[int] = ...) -> None: ...

class RequestAccessGrantRequest(_message.Message):
    __slots__ = ("tenant", "reason", "ttl_seconds", "role")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    reason: str
    ttl_seconds: int
    role: Role
    def __init__(self, tenant: _Optional[str] = ..., reason: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class ApproveAccessGrantRequest(_message.Message):
    __slots__ = ("tenant", "grant_id", "role")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    grant_id: str
    role: Role
    def __init__(self, tenant: _Optional[str] = ..., grant_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class ActivateAccessGrantRequest(_message.Message):
    __slots__ = ("tenant", "grant_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    grant_id: str
    def __init__(self, tenant: _Optional[str] = ..., grant_id: _Optional[str] = ...) -> None: ...

class ActivateAccessGrantResponse(_message.Message):
    __slots__ = ("grant", "token", "key_id")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    grant: AccessGrant
    token: str
    key_id: str
    def __init__(self, grant: _Optional[_Union[AccessGrant, _Mapping]] = ..., token: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class ListAccessGrantsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListAccessGrantsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[AccessGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[AccessGrant, _Mapping]]] = ...) -> None: ...

class RevokeAccessGrantRequest(_message.Message):
    __slots__ = ("tenant", "grant_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    grant_id: str
    def __init__(self, tenant: _Optional[str] = ..., grant_id: _Optional[str] = ...) -> None: ...

class UnlockApiKeyRequest(_message.Message):
    __slots__ = ("tenant", "key_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key_id: str
    def __init__(self, tenant: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class UnlockApiKeyResponse(_message.Message):
    __slots__ = ("was_locked",)
    WAS_LOCKED_FIELD_NUMBER: _ClassVar[int]
    was_locked: bool
    def __init__(self, was_locked: _Optional[bool] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("seq", "time_ms", "operation", "key_id", "outcome", "key_generation", "principal_hash", "collection_hash", "query_hash", "document_hashes", "policy_version", "note")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    KEY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_HASH_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_HASH_FIELD_NUMBER: _ClassVar[int]
    QUERY_HASH_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_HASHES_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_ms: int
    operation: str
    key_id: str
    outcome: str
    key_generation: int
    principal_hash: str
    collection_hash: str
    query_hash: str
    document_hashes: _containers.RepeatedScalarFieldContainer[str]
    policy_version: int
    note: str
    def __init__(self, seq: _Optional[int] = ..., time_ms: _Optional[int] = ..., operation: _Optional[str] = ..., key_id: _Optional[str] = ..., outcome: _Optional[str] = ..., key_generation: _Optional[int] = ..., principal_hash: _Optional[str] = ..., collection_hash: _Optional[str] = ..., query_hash: _Optional[str] = ..., document_hashes: _Optional[_Iterable[str]] = ..., policy_version: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ExportAuditRequest(_message.Message):
    __slots__ = ("tenant", "since_ms", "from_seq", "limit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    since_ms: int
    from_seq: int
    limit: int
    def __init__(self, tenant: _Optional[str] = ..., since_ms: _Optional[int] = ..., from_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ExportOwnAuditRequest(_message.Message):
    __slots__ = ("since_ms", "from_seq", "limit")
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    since_ms: int
    from_seq: int
    limit: int
    def __init__(self, since_ms: _Optional[int] = ..., from_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ExportAuditResponse(_message.Message):
    __slots__ = ("events", "next_seq")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_seq: int
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_seq: _Optional[int] = ...) -> None: ...

class VerifyAuditRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class AuditChainCheck(_message.Message):
    __slots__ = ("tenant_uid", "events", "first_seq", "first_broken", "broken_reason")
    TENANT_UID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_FIELD_NUMBER: _ClassVar[int]
    BROKEN_REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_uid: str
    events: int
    first_seq: int
    first_broken: int
    broken_reason: str
    def __init__(self, tenant_uid: _Optional[str] = ..., events: _Optional[int] = ..., first_seq: _Optional[int] = ..., first_broken: _Optional[int] = ..., broken_reason: _Optional[str] = ...) -> None: ...

class VerifyAuditResponse(_message.Message):
    __slots__ = ("chains", "chains_registered", "chains_expected")
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    CHAINS_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    CHAINS_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    chains: _containers.RepeatedCompositeFieldContainer[AuditChainCheck]
    chains_registered: int
    chains_expected: int
    def __init__(self, chains: _Optional[_Iterable[_Union[AuditChainCheck, _Mapping]]] = ..., chains_registered: _Optional[int] = ..., chains_expected: _Optional[int] = ...) -> None: ...

class TenantPolicy(_message.Message):
    __slots__ = ("denied", "max_k", "max_ef", "max_filter_conditions", "source_uri_prefixes", "quotas")
    DENIED_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_EF_FIELD_NUMBER: _ClassVar[int]
    MAX_FILTER_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    denied: _containers.RepeatedCompositeFieldContainer[DeniedOperation]
    max_k: int
    max_ef: int
    max_filter_conditions: int
    source_uri_prefixes: _containers.RepeatedScalarFieldContainer[str]
    quotas: TenantQuotas
    def __init__(self, denied: _Optional[_Iterable[_Union[DeniedOperation, _Mapping]]] = ..., max_k: _Optional[int] = ..., max_ef: _Optional[int] = ..., max_filter_conditions: _Optional[int] = ..., source_uri_prefixes: _Optional[_Iterable[str]] = ..., quotas: _Optional[_Union[TenantQuotas, _Mapping]] = ...) -> None: ...

class TenantQuotas(_message.Message):
    __slots__ = ("max_vectors", "max_stored_bytes", "max_collections", "requests_per_second", "write_bytes_per_second", "max_concurrent_searches", "burst_multiple", "max_denials")
    MAX_VECTORS_FIELD_NUMBER: _ClassVar[int]
    MAX_STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    WRITE_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_SEARCHES_FIELD_NUMBER: _ClassVar[int]
    BURST_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_DENIALS_FIELD_NUMBER: _ClassVar[int]
    max_vectors: int
    max_stored_bytes: int
    max_collections: int
    requests_per_second: int
    write_bytes_per_second: int
    max_concurrent_searches: int
    burst_multiple: int
    max_denials: int
    def __init__(self, max_vectors: _Optional[int] = ..., max_stored_bytes: _Optional[int] = ..., max_collections: _Optional[int] = ..., requests_per_second: _Optional[int] = ..., write_bytes_per_second: _Optional[int] = ..., max_concurrent_searches: _Optional[int] = ..., burst_multiple: _Optional[int] = ..., max_denials: _Optional[int] = ...) -> None: ...

class DeniedOperation(_message.Message):
    __slots__ = ("role", "operation")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    role: Role
    operation: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., operation: _Optional[str] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("tenant", "policy", "expected_version", "note")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    policy: TenantPolicy
    expected_version: int
    note: str
    def __init__(self, tenant: _Optional[str] = ..., policy: _Optional[_Union[TenantPolicy, _Mapping]] = ..., expected_version: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class PolicyResponse(_message.Message):
    __slots__ = ("version", "changed_ms", "policy")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    version: int
    changed_ms: int
    policy: TenantPolicy
    def __init__(self, version: _Optional[int] = ..., changed_ms: _Optional[int] = ..., policy: _Optional[_Union[TenantPolicy, _Mapping]] = ...) -> None: ...
