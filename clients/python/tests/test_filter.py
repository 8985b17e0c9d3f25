"""The filter builder: every limit is refused where the filter is built, with a clear message; and,
property-style, random filters made by the builder are all accepted by the server and select exactly
the documents a reference evaluation in Python selects."""

from __future__ import annotations

import random
from typing import cast

import pytest

from bulkhead_client import Client, F, Filter, FilterError, Point, where
from bulkhead_client import _limits
from bulkhead_client._pb import bulkhead_pb2 as pb
from bulkhead_client._types import MetaInput


def test_operators_build_the_wire_filter_and_flatten() -> None:
    f = F.eq("lang", "en") & F.in_("year", [2023, 2024]) | ~F.eq("draft", True)
    message = f.to_proto()
    assert message.WhichOneof("kind") == "or"
    left, right = message.__getattribute__("or").filters
    assert left.WhichOneof("kind") == "and" and right.WhichOneof("kind") == "not"
    # Numbers cannot go in one_of: an or of equalities instead. Keywords stay one condition.
    year = left.__getattribute__("and").filters[1]
    assert [c.eq.number for c in year.__getattribute__("or").filters] == [2023.0, 2024.0]
    assert F.in_("lang", ["en", "de"]).to_proto().one_of.values == ["en", "de"]
    # a & b & c is one and of three; ~~a is a.
    chain = F.eq("a", 1) & F.eq("b", 2) & F.eq("c", 3)
    assert len(chain.to_proto().__getattribute__("and").filters) == 3 and chain.depth == 2
    assert ~~F.eq("a", 1) == F.eq("a", 1)
    assert where(lang="en", year=[2023]) == F.eq("lang", "en") & F.in_("year", [2023])
    assert where({"content-type": "pdf"}) == F.eq("content-type", "pdf")
    assert repr(F.range("year", 2000, 2010)) == "Filter(2000.0 <= year <= 2010.0)"
    assert F.ne("lang", "en") == ~F.eq("lang", "en") == F.not_(F.eq("lang", "en"))
    assert F.gte("year", 2020) == F.range("year", min=2020) and F.lte("year", 1) == F.range("year", max=1)
    assert F.all(F.eq("a", 1)) == F.eq("a", 1) and F.any().to_proto().WhichOneof("kind") == "or"
    assert F.in_("year", [True, 2]).conditions == 2 and where().conditions == 0


def test_limits_are_refused_where_the_filter_is_built() -> None:
    with pytest.raises(FilterError, match="field name must be 1 to 128 bytes"):
        F.eq("", "x")
    with pytest.raises(FilterError, match="field name"):
        F.eq("f" * 129, "x")
    with pytest.raises(FilterError, match="at most 1024 bytes"):
        F.eq("f", "x" * 1025)
    with pytest.raises(FilterError, match="finite"):
        F.eq("f", float("inf"))
    with pytest.raises(FilterError, match="finite"):
        F.range("f", min=float("nan"))
    with pytest.raises(FilterError, match="greater than max"):
        F.range("f", 2, 1)
    with pytest.raises(FilterError, match="exactly representable"):
        F.eq("f", 2**60 + 1)
    with pytest.raises(FilterError, match="at most 1024 values"):
        F.in_("f", [str(i) for i in range(1025)])
    with pytest.raises(FilterError, match="not a single string"):
        F.in_("f", "abc")
    with pytest.raises(FilterError, match="str, bool, int or float"):
        F.eq("f", [1])  # type: ignore[arg-type]
    deep = F.eq("f", 1)
    for _ in range(_limits.MAX_FILTER_DEPTH - 1):
        deep = ~deep if deep.to_proto().WhichOneof("kind") != "not" else deep | F.eq("g", 2)
    assert deep.depth == _limits.MAX_FILTER_DEPTH
    with pytest.raises(FilterError, match="nested deeper than 8"):
        ~deep if deep.to_proto().WhichOneof("kind") != "not" else deep & F.eq("h", 3)
    with pytest.raises(FilterError, match="at most 64 are allowed"):
        F.all(*(F.eq(f"f{i}", i) for i in range(65)))
    with pytest.raises(FilterError, match="nodes"):
        F.any(*(F.all() for _ in range(256)))
    with pytest.raises(FilterError, match="fit in a search"):
        F.all(*(F.in_(f"f{i}", [f"{j:01000d}" for j in range(1024)]) for i in range(4)))
    with pytest.raises(FilterError, match="expected a Filter"):
        F.all("lang")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="F.eq"):
        Filter()
    with pytest.raises(AttributeError):
        F.eq("a", 1).depth = 0  # type: ignore[misc]


# -- property: random filters against the server ------------------------------------------------

FIELDS = ["lang", "year", "score", "public", "tags"]
LANGS = ["en", "de", "fr"]
TAGS = ["x", "y", "z"]


def random_metadata(rng: random.Random) -> dict[str, MetaInput]:
    meta: dict[str, MetaInput] = {}
    if rng.random() < 0.8:
        meta["lang"] = rng.choice(LANGS)
    if rng.random() < 0.8:
        meta["year"] = rng.randint(2020, 2025)
    if rng.random() < 0.6:
        meta["score"] = rng.choice([0.25, 0.5, 0.75, 1.5])
    if rng.random() < 0.7:
        meta["public"] = rng.random() < 0.5
    if rng.random() < 0.6:
        meta["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    return meta


def random_leaf(rng: random.Random) -> Filter:
    choice = rng.randrange(6)
    if choice == 0:
        return F.eq("lang", rng.choice(LANGS + ["xx"]))
    if choice == 1:
        return F.eq(rng.choice(["year", "score"]), rng.choice([2021, 2023, 0.5, 1.5]))
    if choice == 2:
        return F.eq("public", rng.random() < 0.5)
    if choice == 3:
        return F.in_(rng.choice(["lang", "tags"]), rng.sample(LANGS + TAGS, rng.randint(0, 3)))
    if choice == 4:
        return F.in_("year", rng.sample(range(2019, 2027), rng.randint(1, 3)))
    low = rng.choice([None, 2021, 0.5])
    high = rng.choice([None, 2024, 1.0])
    if low is not None and high is not None and low > high:
        low, high = high, low
    return F.range(rng.choice(["year", "score"]), low, high)


def random_filter(rng: random.Random, budget: int) -> Filter:
    if budget <= 1 or rng.random() < 0.3:
        return random_leaf(rng)
    op = rng.randrange(3)
    if op == 0:
        return ~random_filter(rng, budget - 1)
    parts = [random_filter(rng, budget // 2) for _ in range(rng.randint(0, 3))]
    return F.all(*parts) if op == 1 else F.any(*parts)


def matches(message: pb.Filter, meta: dict[str, MetaInput]) -> bool:
    """What the server's filters mean (docs: a missing field matches no condition; keyword
    conditions match a keyword field or a keyword-list field containing the value)."""
    kind = message.WhichOneof("kind")
    if kind == "eq":
        value = meta.get(message.eq.field)
        which = message.eq.WhichOneof("value")
        if which == "keyword":
            return value == message.eq.keyword if isinstance(value, str) else isinstance(value, list) and message.eq.keyword in value
        if which == "flag":
            return isinstance(value, bool) and value == message.eq.flag
        return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == message.eq.number
    if kind == "one_of":
        value = meta.get(message.one_of.field)
        allowed = set(message.one_of.values)
        if isinstance(value, str):
            return value in allowed
        return isinstance(value, list) and bool(allowed.intersection(value))
    if kind == "range":
        value = meta.get(message.range.field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        r = message.range
        return (not r.HasField("min") or value >= r.min) and (not r.HasField("max") or value <= r.max)
    if kind == "not":
        return not matches(getattr(message, "not"), meta)
    children = getattr(message, cast(str, kind)).filters
    return all(matches(c, meta) for c in children) if kind == "and" else any(matches(c, meta) for c in children)


def test_random_filters_are_accepted_and_select_what_they_mean(client: Client) -> None:
    rng = random.Random(20231)
    docs = client.create_collection("docs", 2)
    metadata = {f"d{i}": random_metadata(rng) for i in range(60)}
    docs.upsert(Point(id, [1.0, float(i)], metadata=meta) for i, (id, meta) in enumerate(metadata.items()))
    filters = [random_filter(rng, rng.randint(1, 12)) for _ in range(150)]
    assert len({f.depth for f in filters}) > 3 and max(f.conditions for f in filters) > 5
    for f in filters:
        hits = docs.search([1.0, 0.0], k=100, filter=f)
        expected = {id for id, meta in metadata.items() if matches(f.to_proto(), meta)}
        assert {h.id for h in hits} == expected, repr(f)


def test_random_combinations_either_refuse_at_build_or_are_accepted(client: Client) -> None:
    # Large random trees: each either raises FilterError while being built or the server takes it.
    rng = random.Random(7)
    docs = client.create_collection("docs", 2)
    docs.upsert([Point("a", [1.0, 0.0], metadata={"year": 2024})])
    built = refused = 0
    for _ in range(120):
        try:
            f = random_filter(rng, rng.randint(20, 400))
        except FilterError:
            refused += 1
            continue
        built += 1
        docs.search([1.0, 0.0], k=1, filter=f)  # raises InvalidArgument if the server refuses it
    assert built > 20 and refused > 0
