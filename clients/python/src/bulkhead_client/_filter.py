"""Metadata filters that are valid by construction.

    from bulkhead_client import F, where

    F.eq("lang", "en") & F.in_("year", [2023, 2024]) | ~F.eq("draft", True)
    where(lang="en", year=[2023, 2024])          # the same as F.eq(...) & F.in_(...)

Every constructor and operator checks what the server would refuse (docs/LIMITS.md): field names of 1
to 128 bytes, keywords of at most 1,024 bytes, finite numbers, ranges with min <= max, at most 1,024
values in a list, nesting at most 8 deep, at most 64 conditions and 256 nodes, and an encoded size
that leaves room for the rest of a search request. A combination over a limit raises `FilterError`
where it is made, so a `Filter` object that exists is one the server accepts (a tenant's policy may
still lower the number of conditions; the server then answers `InvalidArgument`).

`&` and `|` flatten (`a & b & c` is one `and` of three), which keeps nesting shallow. Conditions on a
field a document lacks never match it, so `~F.eq("lang", "en")` matches documents without `lang`.
The server's `one_of` holds keywords only: `F.in_` over numbers or flags becomes an `or` of equalities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from . import _limits
from ._pb import bulkhead_pb2 as pb

Scalar = str | bool | int | float
"""A value a filter compares with: a keyword, a flag or a number."""

# Room kept in a Search request beside its filter: a query at its limits (a 4,096-dimension vector,
# k, ef, a principal with 256 groups of 256 bytes) takes 83,742 bytes (crates/bulkhead-server/src/
# limits.rs, QUERY_WIRE), plus a collection name and framing.
_SEARCH_ROOM_BYTES = 128 * 1024
MAX_FILTER_BYTES = _limits.MAX_SEARCH_MESSAGE_BYTES - _SEARCH_ROOM_BYTES
"""Largest encoded filter the client builds, so that any search carrying it fits its message limit."""


class FilterError(ValueError):
    """A filter the server would refuse: the message says which limit and where."""


class Filter:
    """An immutable metadata filter; build one with `F`'s functions or `where`, and combine with
    `&` (and), `|` (or) and `~` (not)."""

    __slots__ = ("_pb", "_text", "depth", "nodes", "conditions")

    _pb: pb.Filter
    _text: str
    depth: int
    nodes: int
    conditions: int

    def __init__(self) -> None:
        raise TypeError("build filters with F.eq, F.in_, F.range, ... or where(...)")

    @classmethod
    def _make(cls, message: pb.Filter, text: str, depth: int, nodes: int, conditions: int) -> Filter:
        if depth > _limits.MAX_FILTER_DEPTH:
            raise FilterError(f"filter nested deeper than {_limits.MAX_FILTER_DEPTH} levels: {text}")
        if nodes > _limits.MAX_FILTER_NODES:
            raise FilterError(f"filter has {nodes} nodes, at most {_limits.MAX_FILTER_NODES} are allowed")
        if conditions > _limits.MAX_FILTER_CONDITIONS:
            raise FilterError(
                f"filter has {conditions} conditions, at most {_limits.MAX_FILTER_CONDITIONS} are allowed"
            )
        size = message.ByteSize()
        if size > MAX_FILTER_BYTES:
            raise FilterError(f"filter encodes to {size} bytes, at most {MAX_FILTER_BYTES} fit in a search")
        self = object.__new__(cls)
        object.__setattr__(self, "_pb", message)
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "conditions", conditions)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("filters are immutable")

    def to_proto(self) -> pb.Filter:
        """A copy of the filter as the wire message (`bulkhead.v1.Filter`)."""
        copy = pb.Filter()
        copy.CopyFrom(self._pb)
        return copy

    def __and__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return _combine("and", [self, other])

    def __or__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return _combine("or", [self, other])

    def __invert__(self) -> Filter:
        if self._pb.WhichOneof("kind") == "not":
            # ~~f is f (a missing field fails f and passes ~f, so the double negation is exact).
            inner = pb.Filter()
            inner.CopyFrom(getattr(self._pb, "not"))
            return Filter._make(inner, _describe(inner), self.depth - 1, self.nodes - 1, self.conditions)
        message = pb.Filter()
        getattr(message, "not").CopyFrom(self._pb)
        return Filter._make(message, f"not({self._text})", self.depth + 1, self.nodes + 1, self.conditions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and self._pb == other._pb

    def __hash__(self) -> int:
        return hash(self._pb.SerializeToString(deterministic=True))

    def __repr__(self) -> str:
        return f"Filter({self._text})"


def _combine(kind: str, parts: list[Filter]) -> Filter:
    children: list[Filter] = []
    for part in parts:
        if part._pb.WhichOneof("kind") == kind:
            # Flatten: (a & b) & c is one `and` of a, b and c.
            for child in getattr(part._pb, kind).filters:
                children.append(_wrap(child))
        else:
            children.append(part)
    if len(children) > _limits.MAX_FILTER_LIST:
        raise FilterError(f"an {kind} holds at most {_limits.MAX_FILTER_LIST} children, not {len(children)}")
    message = pb.Filter()
    getattr(message, kind).filters.extend(c._pb for c in children)
    text = f" {kind} ".join(f"({c._text})" if c._pb.WhichOneof("kind") in ("and", "or") else c._text for c in children)
    return Filter._make(
        message,
        text or f"{kind}()",
        1 + max((c.depth for c in children), default=0),
        1 + sum(c.nodes for c in children),
        sum(c.conditions for c in children),
    )


def _wrap(message: pb.Filter) -> Filter:
    """A Filter for a child message taken out of an and/or being flattened (already validated)."""
    depth, nodes, conditions = _shape(message)
    return Filter._make(message, _describe(message), depth, nodes, conditions)


def _shape(message: pb.Filter) -> tuple[int, int, int]:
    kind = message.WhichOneof("kind")
    if kind in ("and", "or"):
        shapes = [_shape(c) for c in getattr(message, kind).filters]
        return (
            1 + max((s[0] for s in shapes), default=0),
            1 + sum(s[1] for s in shapes),
            sum(s[2] for s in shapes),
        )
    if kind == "not":
        depth, nodes, conditions = _shape(getattr(message, "not"))
        return depth + 1, nodes + 1, conditions
    return 1, 1, 1


def _describe(message: pb.Filter) -> str:
    kind = message.WhichOneof("kind")
    if kind == "eq":
        which = message.eq.WhichOneof("value")
        value: Scalar = getattr(message.eq, which) if which else ""
        return f"{message.eq.field} == {value!r}"
    if kind == "one_of":
        return f"{message.one_of.field} in {list(message.one_of.values)!r}"
    if kind == "range":
        low = repr(message.range.min) if message.range.HasField("min") else "-inf"
        high = repr(message.range.max) if message.range.HasField("max") else "inf"
        return f"{low} <= {message.range.field} <= {high}"
    if kind == "not":
        return f"not({_describe(getattr(message, 'not'))})"
    assert kind in ("and", "or")
    children = getattr(message, kind).filters
    parts = [f"({_describe(c)})" if c.WhichOneof("kind") in ("and", "or") else _describe(c) for c in children]
    return f" {kind} ".join(parts) or f"{kind}()"


def _field(name: str) -> str:
    if not isinstance(name, str):
        raise FilterError(f"a field name is a str, not {type(name).__name__}")
    size = len(name.encode())
    if not 1 <= size <= _limits.MAX_METADATA_KEY_BYTES:
        raise FilterError(f"field name must be 1 to {_limits.MAX_METADATA_KEY_BYTES} bytes, not {size}")
    return name


def _keyword(value: str) -> str:
    size = len(value.encode())
    if size > _limits.MAX_FILTER_VALUE_BYTES:
        raise FilterError(f"a keyword in a filter is at most {_limits.MAX_FILTER_VALUE_BYTES} bytes, not {size}")
    return value


def _number(value: int | float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FilterError(f"{what} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise FilterError(f"{what} must be a finite number, not {value!r}")
    if isinstance(value, int) and int(number) != value:
        raise FilterError(f"{what} {value} is not exactly representable as a 64-bit float")
    return number


class F:
    """Filter constructors. Each returns a `Filter`; combine them with `&`, `|` and `~`."""

    @staticmethod
    def eq(field: str, value: Scalar) -> Filter:
        """The field equals the value: a keyword (or a keyword-list field containing it), a number or
        a flag."""
        message = pb.Filter()
        message.eq.field = _field(field)
        if isinstance(value, bool):
            message.eq.flag = value
        elif isinstance(value, str):
            message.eq.keyword = _keyword(value)
        elif isinstance(value, (int, float)):
            message.eq.number = _number(value, f"the value of {field}")
        else:
            raise FilterError(f"F.eq compares with a str, bool, int or float, not {type(value).__name__}")
        return Filter._make(message, _describe(message), 1, 1, 1)

    @staticmethod
    def ne(field: str, value: Scalar) -> Filter:
        """`~F.eq(field, value)`: also matches documents without the field."""
        return ~F.eq(field, value)

    @staticmethod
    def in_(field: str, values: Iterable[Scalar]) -> Filter:
        """The field is one of the values. Keywords become one `one_of` condition; numbers and flags
        (which `one_of` cannot hold) an `or` of equalities, one condition each."""
        if isinstance(values, (str, bytes)):
            raise FilterError("F.in_ takes a list of values, not a single string")
        items = list(values)
        if len(items) > _limits.MAX_FILTER_LIST:
            raise FilterError(f"F.in_ takes at most {_limits.MAX_FILTER_LIST} values, not {len(items)}")
        if all(isinstance(v, str) for v in items):
            message = pb.Filter()
            message.one_of.field = _field(field)
            message.one_of.values.extend(_keyword(v) for v in items if isinstance(v, str))
            return Filter._make(message, _describe(message), 1, 1, 1)
        return F.any(*(F.eq(field, v) for v in items))

    @staticmethod
    def range(field: str, min: int | float | None = None, max: int | float | None = None) -> Filter:
        """The number field is within `min` and `max`, both inclusive; a missing bound is open."""
        message = pb.Filter()
        message.range.field = _field(field)
        low = None if min is None else _number(min, f"the lower bound of {field}")
        high = None if max is None else _number(max, f"the upper bound of {field}")
        if low is not None and high is not None and low > high:
            raise FilterError(f"range of {field}: min {min!r} is greater than max {max!r}")
        if low is not None:
            message.range.min = low
        if high is not None:
            message.range.max = high
        return Filter._make(message, _describe(message), 1, 1, 1)

    @staticmethod
    def gte(field: str, value: int | float) -> Filter:
        """The number field is at least the value."""
        return F.range(field, min=value)

    @staticmethod
    def lte(field: str, value: int | float) -> Filter:
        """The number field is at most the value."""
        return F.range(field, max=value)

    @staticmethod
    def all(*filters: Filter) -> Filter:
        """Every filter matches (no filters: matches everything)."""
        _check_filters(filters)
        if len(filters) == 1:
            return filters[0]
        return _combine("and", list(filters))

    @staticmethod
    def any(*filters: Filter) -> Filter:
        """At least one filter matches (no filters: matches nothing)."""
        _check_filters(filters)
        if len(filters) == 1:
            return filters[0]
        return _combine("or", list(filters))

    @staticmethod
    def not_(filter: Filter) -> Filter:
        """The filter does not match (`~filter`)."""
        _check_filters((filter,))
        return ~filter


def _check_filters(filters: Iterable[object]) -> None:
    for f in filters:
        if not isinstance(f, Filter):
            raise FilterError(f"expected a Filter, not {type(f).__name__}")


def where(conditions: Mapping[str, Scalar | Iterable[Scalar]] | None = None, /, **fields: Scalar | Iterable[Scalar]) -> Filter:
    """Equalities on every named field, all of which must hold: a list (or tuple or set) means
    "one of". `where(lang="en", year=[2023, 2024])`; field names that are not Python identifiers go
    in a dict: `where({"content-type": "pdf"})`."""
    merged: dict[str, Scalar | Iterable[Scalar]] = dict(conditions or {})
    for name, value in fields.items():
        if name in merged:
            raise FilterError(f"field {name!r} given twice")
        merged[name] = value
    parts: list[Filter] = []
    for name, value in merged.items():
        if isinstance(value, (str, bool, int, float)):
            parts.append(F.eq(name, value))
        elif isinstance(value, Iterable):
            parts.append(F.in_(name, value))
        else:
            raise FilterError(f"where({name}=...) takes a str, bool, number or a list of them")
    return F.all(*parts)
