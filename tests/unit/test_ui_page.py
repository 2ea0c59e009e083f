"""The clinician page as served by the gateway: routes, headers, and static checks of the files
(self-contained, labelled controls, error messages in step with gateway/errors.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fundus.errors import ERROR_CODES as FUNDUS_ERRORS
from gateway.api.responses import IMAGE_ERRORS, SERVICE_ERRORS
from gateway.api.routes.ui import UI_DIR, UI_FILES
from gateway.main import create_app
from gateway.settings import Settings

SCRIPTS = sorted(name for name in UI_FILES if name.endswith(".js"))
SCRIPT = "\n".join((UI_DIR / name).read_text() for name in SCRIPTS)
STYLE = (UI_DIR / "style.css").read_text()
PAGE = (UI_DIR / "index.html").read_text()


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The app without its lifespan: no backend is opened, the static routes do not need one."""
    app = create_app(
        Settings(
            auth="disabled", environment="development", backend="local", model_dir=Path("/none")
        )
    )
    return TestClient(app)


class _Elements(HTMLParser):
    """Start tags with their attributes, inline script bodies and label targets."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def _parsed() -> _Elements:
    parser = _Elements()
    parser.feed(PAGE)
    return parser


def test_page_and_assets_have_their_content_types_and_a_strict_csp(client: TestClient) -> None:
    expected = {"/": "text/html", "/ui/style.css": "text/css"}
    expected |= {f"/ui/{name}": "text/javascript" for name in SCRIPTS}
    assert "app.js" in SCRIPTS
    for path, kind in expected.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        for name in ("script-src", "style-src", "connect-src"):
            assert directives[name] == "'self'", name
        assert directives["img-src"] == "'self' data:"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in csp and "http" not in csp and "*" not in csp
    assert client.head("/").status_code == 200
    assert "Diabetic retinopathy grading" in client.get("/").text


def test_only_the_listed_files_are_served(client: TestClient) -> None:
    for path in ("/ui/nope.js", "/ui/..%2Fmain.py", "/ui/index.html", "/ui/%2e%2e", "/ui/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", path
    assert set(UI_FILES) == {p.name for p in UI_DIR.iterdir() if p.is_file()}


def test_page_is_self_contained_and_csp_clean() -> None:
    parser = _parsed()
    assert not parser.inline_scripts, "inline scripts are blocked by the CSP"
    for tag, attrs in parser.tags:
        assert "style" not in attrs, f"inline style on <{tag}> is blocked by the CSP"
        assert not [a for a in attrs if a.startswith("on")], f"inline handler on <{tag}>"
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is None or value.startswith("#") or value == "data:,":
                continue
            assert value.startswith("/ui/") and value[4:] in UI_FILES, (tag, value)
    for text in (SCRIPT, STYLE, PAGE):
        assert not re.search(r"https?://|//cdn|@import", text)
    assert "url(" not in STYLE


def test_every_control_is_labelled_and_ids_are_unique() -> None:
    parser = _parsed()
    ids = [attrs["id"] for _, attrs in parser.tags if attrs.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    targets = {attrs.get("for") for tag, attrs in parser.tags if tag == "label"}
    controls = [
        attrs
        for tag, attrs in parser.tags
        if tag in {"input", "select", "textarea"} and attrs.get("type") != "hidden"
    ]
    assert len(controls) >= 7  # API key, 2 files, 2 heat-map toggles, 2 opacity sliders
    for attrs in controls:
        assert attrs.get("id") in targets or attrs.get("aria-label"), attrs
    live = [attrs for _, attrs in parser.tags if attrs.get("aria-live") or attrs.get("role")]
    assert any(a.get("id") == "status" and a.get("aria-live") == "polite" for a in live)
    assert any(a.get("id") == "alert" and a.get("role") == "alert" for a in live)
    assert ":focus-visible {\n  outline: 3px solid" in STYLE


def test_every_error_code_of_the_grading_routes_has_a_message() -> None:
    image_block = SCRIPT[SCRIPT.index("DRG.IMAGE_ERRORS = {") :]
    image_block = image_block[: image_block.index("};")]
    for cls in FUNDUS_ERRORS:  # about one file: shown on that eye
        assert re.search(rf"\b{cls.code}:", image_block), cls.code
    for code in (*IMAGE_ERRORS, *SERVICE_ERRORS):
        assert re.search(rf"\b{code}:", SCRIPT), code


def test_script_keeps_the_key_in_session_storage_and_never_builds_html() -> None:
    assert "sessionStorage" in SCRIPT
    for forbidden in (
        "localStorage",
        "document.cookie",
        "innerHTML",
        "outerHTML",
        "eval(",
        "new Function",
    ):
        assert forbidden not in SCRIPT, forbidden


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_parses(name: str) -> None:
    result = subprocess.run(
        ["node", "--check", str(UI_DIR / name)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_script_is_loaded_by_the_page_app_js_last() -> None:
    sources = [str(attrs.get("src")) for tag, attrs in _parsed().tags if tag == "script"]
    assert sorted(sources) == sorted(f"/ui/{name}" for name in SCRIPTS)
    assert sources[-1] == "/ui/app.js"  # the others only define window.DRG parts


def test_the_grading_scale_is_served_as_json_without_a_key(tmp_path: Path) -> None:
    from contract.grades import GRADES, REFERABLE_MIN_GRADE
    from gateway.auth import hash_key

    keys = tmp_path / "api_keys"
    keys.write_text(f"someone {hash_key('a-key')} grade\n")
    app = create_app(Settings(backend="local", model_dir=Path("/none"), api_keys_file=keys))
    client = TestClient(app)
    assert client.get("/v1/results/1.2.3").json()["error"]["code"] == "unauthorized"  # keys on
    response = client.get("/v1/grading-scale")  # no key: the page loads it before any sign-in
    assert response.status_code == 200
    assert response.json() == {
        "grades": [
            {
                "grade": g.number,
                "name": g.name,
                "short_name": g.short_name,
                "referable": g.number >= REFERABLE_MIN_GRADE,
            }
            for g in GRADES
        ],
        "referable_min_grade": REFERABLE_MIN_GRADE,
    }
    assert "/v1/grading-scale" in app.openapi()["paths"]


def test_the_script_names_grades_from_the_served_scale_only() -> None:
    from contract.grades import GRADES

    assert '"/v1/grading-scale"' in SCRIPT
    for grade in GRADES:  # no copy of the names in the page
        for name in {grade.name, grade.short_name} - {"No DR"}:
            assert name not in SCRIPT, name
    assert '"No DR"' not in SCRIPT
