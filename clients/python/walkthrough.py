"""The README's Python walkthrough, on the bulkhead-client package, against a real `bulkhead serve`
(harness.py: 127.0.0.1, an ephemeral port, a fresh data directory, SIGTERM at the end). From
`pip install ./clients/python` to a filtered search on behalf of a user is the body of `walkthrough()`
below: the operator creates a tenant and two keys, the tenant admin creates a collection and upserts
three points (text, metadata, source URI, ACLs), and a backend's on-behalf-of key searches for alice
with a metadata filter. `main()` checks what came back, that the server stopped cleanly and that no
credential reached its log. The package's own tests (clients/python/tests) cover every other call.

    scripts/test-python.sh                      # makes the venv, installs the package, runs this
    python walkthrough.py [--bin PATH]          # inside that venv, with a built binary

The README's Python section is this function's body (tests/test_walkthrough.py checks that it is,
and that it is short enough).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from bulkhead_client import Acl, AdminClient, Client, Hit, Point, where

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def walkthrough(url: str, admin_token: str) -> tuple[list[Hit], list[str]]:
    # --- walkthrough: from here to the end of the function is the README's Python section.
    admin = AdminClient(url, admin_token)  # the operator
    admin.create_tenant("shop")
    owner = admin.issue_key("shop", "tenant-admin").token
    backend = admin.issue_key("shop", "reader", on_behalf_of=True).token  # searches for its users

    docs = Client(url, owner).create_collection("docs", dimension=3, metric="cosine")
    docs.upsert([
        Point("a", [1, 0, 0], text="hello", metadata={"lang": "en", "year": 2024}, source="https://example.com/a"),
        Point("b", [0, 1, 0], text="for alice", metadata={"lang": "en"}, acl=Acl(users=["alice"])),
        Point("c", [0, 0, 1], text="for engineers", metadata={"lang": "de"}, acl=Acl(groups=["eng"])),
    ])

    search = Client(url, backend).collection("docs").search
    hits = search([0.1, 0.9, 0], k=3, filter=where(lang="en"), principal=("alice", ["eng"]))
    for hit in hits:
        print(hit.id, round(hit.score, 3), hit.text, hit.metadata, hit.source, hit.provenance.matched_by)
    # --- end of the walkthrough
    return hits, [owner, backend]


class Steps:
    """Counts the checks that passed and names the one that failed."""

    def __init__(self) -> None:
        self.passed = 0

    def check(self, name: str, condition: bool, detail: str = "") -> None:
        if not condition:
            raise AssertionError(f"{name}: {detail}" if detail else name)
        self.passed += 1
        print(f"  ok  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=harness.default_binary(), help="the bulkhead binary")
    args = parser.parse_args()
    harness.sigterm_raises()
    steps = Steps()
    try:
        with tempfile.TemporaryDirectory(prefix="bulkhead-py-") as tmp:
            with harness.BulkheadServer(args.bin, Path(tmp) / "data") as server:
                steps.check("bulkhead serve started on an ephemeral port", server.address.startswith("127.0.0.1:"))
                hits, keys = walkthrough(f"http://{server.address}", server.admin_token())
                ids = [h.id for h in hits]
                steps.check("alice sees her document, then the tenant-wide one; lang=de is filtered out", ids == ["b", "a"], str(ids))
                steps.check(
                    "hits carry text, metadata, source and why alice may see them",
                    hits[0].text == "for alice"
                    and hits[0].provenance.matched_by == "user"
                    and hits[1].metadata == {"lang": "en", "year": 2024}
                    and hits[1].source == "https://example.com/a"
                    and hits[1].provenance.matched_by == "tenant-wide",
                )
                steps.check("cosine scores, best first", 0.99 < hits[0].score <= 1.0 and hits[0].score > hits[1].score)
                server.stop()
                steps.check("SIGTERM: the server stopped cleanly and flushed its store", True)
                log = server.log()
                secrets = [*keys, server.admin_token()]
                steps.check("no key or token reached the server log", not any(s in log for s in secrets))
    except Exception:
        # The traceback names the failed step; it holds no credentials (they are never in messages).
        traceback.print_exc()
        print(f"walkthrough: {steps.passed} passed, 1 failed")
        return 1
    print(f"walkthrough: {steps.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
