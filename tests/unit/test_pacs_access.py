"""Who reads which PACS result: the ``results:read`` scope and the per-object rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api.routes.results import may_read
from gateway.auth import ApiClient, ApiKeyStore, hash_key
from gateway.errors import ApiError
from gateway.store.results import ResultRow


def row(sender: str | None) -> ResultRow:
    return ResultRow(
        "1.2.3", "dr_grader", 1, "2.25.1", {}, "pending", 0, 0.0, None, 0.0, None, sender=sender
    )


def client(name: str, *scopes: str) -> ApiClient:
    return ApiClient(name, frozenset(scopes))


def test_results_read_is_a_scope_never_implied(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"admin {hash_key('k-admin')} results:read\nold-unscoped {hash_key('k-old')}\n")
    store = ApiKeyStore.load(keys)
    assert store.authenticate("k-admin", "results:read").name == "admin"
    assert store.authenticate("k-old", "pacs").scopes == frozenset({"grade", "pacs"})
    with pytest.raises(ApiError) as caught:
        store.authenticate("k-old", "results:read")
    assert caught.value.code == "forbidden"


@pytest.mark.parametrize(
    ("reader", "sender", "allowed"),
    [
        (client("pacs-a", "pacs"), "pacs-a", True),
        (client("pacs-b", "pacs"), "pacs-a", False),
        (client("smoke", "grade"), "pacs-a", False),  # the review's release smoke key
        (client("admin", "results:read"), "pacs-a", True),
        (client("pacs-a", "pacs"), None, False),  # rows from before the sender was recorded
        (client("admin", "results:read"), None, True),
        (None, "pacs-a", True),  # DRG_AUTH=disabled (the demo)
    ],
)
def test_may_read(reader: ApiClient | None, sender: str | None, allowed: bool) -> None:
    assert may_read(reader, row(sender)) is allowed
