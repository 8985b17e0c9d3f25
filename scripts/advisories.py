#!/usr/bin/env python3
"""Writes supply-chain/advisories.toml: the RustSec advisories of every crate in Cargo.lock, taken from
a checkout of https://github.com/rustsec/advisory-db, so that tests/it/supply_chain.rs can check the
lock file against them offline (CI reaches crates.io but not GitHub).

Usage: scripts/advisories.py ADVISORY_DB_CLONE   (rerun it whenever the lock file or the database
changes; the file records the database commit it was made from).
"""
import pathlib
import re
import subprocess
import sys
import tomllib


def main() -> None:
    db = pathlib.Path(sys.argv[1])
    root = pathlib.Path(__file__).resolve().parent.parent
    lock = tomllib.loads((root / "Cargo.lock").read_text())
    names = {package["name"] for package in lock["package"]}
    commit, date = subprocess.run(
        ["git", "-C", str(db), "log", "-1", "--format=%H %cs"], capture_output=True, text=True, check=True
    ).stdout.split()
    out = [
        "# RustSec advisories of the crates in Cargo.lock, for tests/it/supply_chain.rs (offline).",
        f"# Made by scripts/advisories.py from rustsec/advisory-db {commit} ({date}).",
        f'database_commit = "{commit}"',
        f'database_date = "{date}"',
        "",
    ]
    count = 0
    # Read through git, so a bare clone (no work tree) serves as well as a checkout.
    listed = subprocess.run(
        ["git", "-C", str(db), "ls-tree", "-r", "--name-only", "HEAD", "crates"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    for path in sorted(listed):
        parts = path.split("/")
        if len(parts) != 3 or not path.endswith(".md") or parts[1] not in names:
            continue
        text = subprocess.run(
            ["git", "-C", str(db), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
        ).stdout
        front = re.search(r"```toml\n(.*?)\n```", text, re.S)
        if not front:
            continue
        meta = tomllib.loads(front.group(1))
        advisory, versions = meta["advisory"], meta.get("versions", {})
        title = re.search(r"^# (.+)$", text[front.end():], re.M)
        out += [
            "[[advisory]]",
            f'id = "{advisory["id"]}"',
            f'package = "{advisory["package"]}"',
            f'date = "{advisory["date"]}"',
            f"title = {quote(title.group(1).strip() if title else '')}",
            f'informational = "{advisory.get("informational", "")}"',
            f'withdrawn = {"true" if advisory.get("withdrawn") else "false"}',
            "patched = [" + ", ".join(quote(v) for v in versions.get("patched", [])) + "]",
            "unaffected = [" + ", ".join(quote(v) for v in versions.get("unaffected", [])) + "]",
            "",
        ]
        count += 1
    (root / "supply-chain" / "advisories.toml").write_text("\n".join(out))
    print(f"{count} advisories of {len(names)} locked crates, database {commit[:12]} ({date})")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
