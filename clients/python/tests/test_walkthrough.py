"""The README's Python walkthrough is walkthrough.py's, short enough (fewer than 25 lines from the
install to a filtered search on behalf of a user), and runs as pasted against a real server."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "clients" / "python"))
import walkthrough  # noqa: E402


def readme_python_section() -> list[str]:
    """The README's shell block that installs the package and runs the walkthrough, line by line."""
    readme = (REPO / "README.md").read_text()
    found = re.search(r"```sh\n(python3 -m venv .*?\n)```", readme, re.S)
    assert found, "the README's Python walkthrough block is missing"
    return found.group(1).splitlines()


def walkthrough_body() -> list[str]:
    source = inspect.getsource(walkthrough.walkthrough)
    body = source.split("# --- walkthrough: from here to the end of the function is the README's Python section.\n")[1]
    body = body.split("    # --- end of the walkthrough\n")[0]
    return textwrap.dedent(body).splitlines()


def test_the_readme_runs_walkthrough_py_in_fewer_than_25_lines() -> None:
    block = readme_python_section()
    body = walkthrough_body()
    start = block.index(body[0])
    assert block[start : start + len(body)] == body
    install = next(i for i, line in enumerate(block) if "pip install ./clients/python" in line)
    search = next(i for i, line in enumerate(block) if "principal=" in line)
    lines = [line for line in block[install : search + 1] if line.strip()]
    assert len(lines) < 25, f"{len(lines)} lines from the install to the search"


def test_the_readme_block_runs_as_pasted(server: harness.BulkheadServer, tmp_path: Path) -> None:
    # The block's Python, with only the server's address changed: it reads the development admin
    # token from ./bulkhead-data as after `scripts/serve`.
    block = readme_python_section()
    program = "\n".join(block[block.index(".venv/bin/python - <<'EOF'") + 1 : block.index("EOF")])
    assert program.count('"http://127.0.0.1:7450"') == 1
    program = program.replace('"http://127.0.0.1:7450"', f'"http://{server.address}"')
    (tmp_path / "bulkhead-data").symlink_to(server.data_dir)
    run = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    printed = [line.split()[0] for line in run.stdout.splitlines()]
    assert printed == ["b", "a"]
    assert "for alice" in run.stdout and "tenant-wide" in run.stdout
