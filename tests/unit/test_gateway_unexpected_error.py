"""A gateway bug (an unexpected exception) is a coded 500 that closes its connection."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.settings import Settings


def test_an_unexpected_error_closes_its_connection(tmp_path: Path) -> None:
    """Regression: uvicorn drops the connection after a 500 (Starlette re-raises the error), so
    the answer must say ``Connection: close`` or the client's next request is reset."""
    settings = Settings(auth="disabled", environment="development", model_dir=tmp_path)
    app = create_app(settings)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["connection"] == "close"
