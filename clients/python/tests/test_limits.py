"""The limits the client batches and validates by are those docs/LIMITS.md documents."""

from __future__ import annotations

import re
from pathlib import Path

from bulkhead_client import _limits

LIMITS_MD = Path(__file__).resolve().parents[3] / "docs" / "LIMITS.md"


def test_every_client_limit_matches_the_documented_table() -> None:
    documented: dict[str, int] = {}
    for line in LIMITS_MD.read_text().splitlines():
        row = re.match(r"\|.*\| `([A-Z_]+)` \| (\d+)", line)
        if row:
            documented[row.group(1)] = int(row.group(2))
    ours = {name: value for name, value in vars(_limits).items() if name.startswith("MAX_")}
    assert len(ours) >= 19
    for name, value in ours.items():
        assert documented.get(name) == value, f"{name}: client {value}, docs/LIMITS.md {documented.get(name)}"
