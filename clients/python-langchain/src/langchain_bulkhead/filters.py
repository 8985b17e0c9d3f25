"""LangChain's dict filters (the `$eq`/`$and` style that Chroma, PGVector and the self-query
retriever write) translated into Bulkhead filters, which the server applies before ranking.

    {"lang": "en"}                                  lang == "en"
    {"year": [2023, 2024]}                          year is one of them (as bulkhead_client.where)
    {"year": {"$gte": 2023, "$lt": 2025}}           2023 <= year < 2025
    {"$or": [{"lang": "en"}, {"tags": {"$in": ["faq", "howto"]}}]}
    {"$not": {"draft": True}}

Supported: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte` (numbers), `$in`, `$nin`, and `$and`, `$or`,
`$not` (several keys in one dict are all required). Anything else (`$exists`, `$like`, `$contain`,
...) raises `UnsupportedFilter`: no condition is ever dropped. A `bulkhead_client.Filter` is taken
as it is.

What the server's conditions mean, and so what these do: a document without the field matches no
condition on it, so `$ne` and `$nin` (negations) match documents without the field; a keyword
condition also matches a keyword-list field that contains the keyword. `$gt`/`$lt` are exact:
the server's ranges are inclusive, so `{"$gt": 3}` becomes `3 <= x and not x == 3`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulkhead_client import F, Filter, FilterError

__all__ = ["SUPPORTED_OPERATORS", "UnsupportedFilter", "to_bulkhead_filter"]

SUPPORTED_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$not")


class UnsupportedFilter(FilterError):
    """A filter that Bulkhead cannot evaluate exactly (an operator it lacks, or a malformed dict).
    A `ValueError`, like every `FilterError` the client raises for values over its limits."""


def to_bulkhead_filter(filter: Mapping[str, Any] | Filter | None) -> Filter | None:
    """The Bulkhead filter for a LangChain dict filter (None and `{}`: no filter)."""
    if filter is None or isinstance(filter, Filter):
        return filter
    if not isinstance(filter, Mapping):
        raise UnsupportedFilter(f"a filter is a dict or a bulkhead_client.Filter, not {type(filter).__name__}")
    if not filter:
        return None
    return _node(filter)


def _node(filter: Mapping[str, Any]) -> Filter:
    if not isinstance(filter, Mapping) or not filter:
        raise UnsupportedFilter(f"expected a non-empty dict of conditions, not {filter!r}")
    parts = [_entry(key, value) for key, value in filter.items()]
    return parts[0] if len(parts) == 1 else F.all(*parts)


def _entry(key: str, value: Any) -> Filter:
    if key in ("$and", "$or"):
        if not isinstance(value, (list, tuple)) or not value:
            raise UnsupportedFilter(f"{key} takes a non-empty list of filters")
        children = [_node(child) for child in value]
        return F.all(*children) if key == "$and" else F.any(*children)
    if key == "$not":
        return ~_node(value)
    if key.startswith("$"):
        raise UnsupportedFilter(f"unsupported filter operator {key!r}; Bulkhead supports {', '.join(SUPPORTED_OPERATORS)}")
    if isinstance(value, Mapping):
        if not value:
            raise UnsupportedFilter(f"the condition on {key!r} is an empty dict")
        conditions = [_condition(key, op, operand) for op, operand in value.items()]
        return conditions[0] if len(conditions) == 1 else F.all(*conditions)
    if isinstance(value, (list, tuple, set, frozenset)):
        return F.in_(key, value)
    return F.eq(key, value)


def _condition(field: str, op: str, operand: Any) -> Filter:
    if op == "$eq":
        return F.eq(field, operand)
    if op == "$ne":
        return F.ne(field, operand)
    if op == "$gte":
        return F.gte(field, operand)
    if op == "$lte":
        return F.lte(field, operand)
    if op == "$gt":
        return F.gte(field, operand) & ~F.eq(field, operand)
    if op == "$lt":
        return F.lte(field, operand) & ~F.eq(field, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple, set, frozenset)):
            raise UnsupportedFilter(f"{op} on {field!r} takes a list of values")
        one_of = F.in_(field, operand)
        return one_of if op == "$in" else ~one_of
    raise UnsupportedFilter(
        f"unsupported operator {op!r} on {field!r}; Bulkhead supports {', '.join(SUPPORTED_OPERATORS)}"
    )
