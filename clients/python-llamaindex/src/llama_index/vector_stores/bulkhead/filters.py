"""LlamaIndex `MetadataFilters` translated into Bulkhead filters, which the server applies before
ranking.

| LlamaIndex operator | Bulkhead |
| --- | --- |
| `EQ`, `NE` | equality, its negation (keyword, number or flag) |
| `GT`, `GTE`, `LT`, `LTE` | inclusive ranges on numbers (`GT x` is `>= x and not == x`: exact) |
| `IN`, `NIN` | one of the values, its negation |
| `ANY`, `ALL` | a keyword-list field holds any / all of the keywords |
| `CONTAINS` | a keyword-list field holds the keyword (a plain field equals it) |
| `TEXT_MATCH`, `TEXT_MATCH_INSENSITIVE`, `IS_EMPTY` | not supported: `UnsupportedFilter` |

Conditions `AND`, `OR` and `NOT` (none of the filters matches) combine them, nested `MetadataFilters`
included. No condition is ever dropped: what Bulkhead cannot evaluate exactly raises. A document
without the field matches no condition on it, so `NE`, `NIN` and `NOT` match documents without it;
a keyword condition also matches a keyword-list field that holds the keyword.
"""

from __future__ import annotations

from bulkhead_client import F, Filter, FilterError
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

__all__ = ["SUPPORTED_OPERATORS", "UnsupportedFilter", "to_bulkhead_filter"]

SUPPORTED_OPERATORS = (
    FilterOperator.EQ,
    FilterOperator.NE,
    FilterOperator.GT,
    FilterOperator.GTE,
    FilterOperator.LT,
    FilterOperator.LTE,
    FilterOperator.IN,
    FilterOperator.NIN,
    FilterOperator.ANY,
    FilterOperator.ALL,
    FilterOperator.CONTAINS,
)


class UnsupportedFilter(FilterError):
    """A filter Bulkhead cannot evaluate exactly (an operator it lacks, or a malformed value). A
    `ValueError`, like every `FilterError` the client raises for values over its limits."""


def to_bulkhead_filter(filters: MetadataFilters | Filter | None) -> Filter | None:
    """The Bulkhead filter for LlamaIndex filters (None or no filters: no filter)."""
    if filters is None or isinstance(filters, Filter):
        return filters
    if not isinstance(filters, MetadataFilters):
        raise UnsupportedFilter(f"filters are MetadataFilters or a bulkhead_client.Filter, not {type(filters).__name__}")
    return _filters(filters)


def _filters(filters: MetadataFilters) -> Filter | None:
    parts: list[Filter] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            nested = _filters(item)
            if nested is not None:
                parts.append(nested)
        else:
            parts.append(_one(item))
    condition = filters.condition or FilterCondition.AND
    if not parts:
        if condition == FilterCondition.AND:
            return None
        raise UnsupportedFilter(f"a {condition.value} of no filters")
    if condition == FilterCondition.AND:
        return F.all(*parts)
    if condition == FilterCondition.OR:
        return F.any(*parts)
    if condition == FilterCondition.NOT:
        return ~F.any(*parts)
    raise UnsupportedFilter(f"unsupported filter condition {condition!r}")


def _one(filter: MetadataFilter) -> Filter:
    key, value, op = filter.key, filter.value, filter.operator
    supported = ", ".join(o.name for o in SUPPORTED_OPERATORS)
    if op not in SUPPORTED_OPERATORS:
        raise UnsupportedFilter(f"unsupported filter operator {op.name} on {key!r}; Bulkhead supports {supported}")
    if op in (FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL):
        if not isinstance(value, list):
            raise UnsupportedFilter(f"{op.name} on {key!r} takes a list of values")
        if op == FilterOperator.ALL:
            return F.all(*(F.eq(key, v) for v in value))
        one_of = F.in_(key, value)
        return ~one_of if op == FilterOperator.NIN else one_of
    if isinstance(value, list) or value is None:
        raise UnsupportedFilter(f"{op.name} on {key!r} takes one str, int or float")
    if op in (FilterOperator.EQ, FilterOperator.CONTAINS):
        return F.eq(key, value)
    if op == FilterOperator.NE:
        return F.ne(key, value)
    if isinstance(value, str):
        raise UnsupportedFilter(f"{op.name} on {key!r} compares numbers, not a str")
    if op == FilterOperator.GTE:
        return F.gte(key, value)
    if op == FilterOperator.LTE:
        return F.lte(key, value)
    if op == FilterOperator.GT:
        return F.gte(key, value) & ~F.eq(key, value)
    return F.lte(key, value) & ~F.eq(key, value)
