"""The README's example, run as it stands against the test server: the retriever for alice finds
the tenant-wide document and hers, never the one for group hr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import harness

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_as_written(server: harness.BulkheadServer) -> None:
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert example is not None
    env = dict(os.environ, BULKHEAD_URL=f"http://{server.address}", BULKHEAD_ADMIN_TOKEN=server.admin_token())
    run = subprocess.run([sys.executable, "-c", example.group(1)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    printed = {line.split()[0] for line in run.stdout.splitlines()}
    assert printed == {"expenses", "oncall"}
