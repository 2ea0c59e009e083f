"""API keys: file format, 401/403, header forms, the key tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import ApiKeyStore, hash_key, key_from_headers, main
from gateway.errors import ApiError


@pytest.fixture
def store(tmp_path: Path) -> ApiKeyStore:
    path = tmp_path / "keys.txt"
    path.write_text(
        "# clients\n"
        f"clinic-web {hash_key('k-web')} grade\n"
        f"pacs-1 {hash_key('k-pacs')} pacs  # Orthanc\n"
        f"ops {hash_key('k-all')}\n"
    )
    return ApiKeyStore.load(path)


def test_known_key_with_scope(store: ApiKeyStore) -> None:
    assert store.authenticate("k-web", "grade").name == "clinic-web"
    assert store.authenticate("k-all", "pacs").name == "ops"


@pytest.mark.parametrize("key", [None, "", "wrong", "k-web "])
def test_unknown_or_missing_key_is_401(store: ApiKeyStore, key: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        store.authenticate(key, "grade")
    assert caught.value.status == 401


def test_key_without_scope_is_403(store: ApiKeyStore) -> None:
    with pytest.raises(ApiError) as caught:
        store.authenticate("k-pacs", "grade")
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


@pytest.mark.parametrize(
    "line",
    ["bad", "name sha256:xyz", "na me sha256:" + "0" * 64, f"x {hash_key('a')} grade,admin"],
)
def test_malformed_lines_stop_startup(tmp_path: Path, line: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=r"keys\.txt:1"):
        ApiKeyStore.load(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no keys"):
        ApiKeyStore.load(path)


def test_headers() -> None:
    assert key_from_headers("Bearer abc", None) == "abc"
    assert key_from_headers("bearer  abc ", None) == "abc"
    assert key_from_headers("Basic abc", "xyz") == "xyz"
    assert key_from_headers(None, None) is None


def test_new_key_tool_output_authenticates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-key", "--name", "site-a", "--scopes", "grade"]) == 0
    out, err = capsys.readouterr()
    key = err.rsplit(": ", 1)[1].strip()
    path = tmp_path / "keys.txt"
    path.write_text(out)
    assert key not in out  # only the hash is stored
    assert ApiKeyStore.load(path).authenticate(key, "grade").name == "site-a"
