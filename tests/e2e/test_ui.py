"""The clinician page in a real headless Chromium (Debian's, driven by Playwright) against real
gateway processes (local backend, tiny model): what the page shows must be what the API says.

Screenshots (laptop 1366x768, tablet 820x1180) go to ``artifacts/ui/`` as the test's evidence.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import REPO_ROOT, GatewayProcess, free_port
from synthetic import (
    encode_dicom,
    encode_jpeg,
    encode_png,
    synthesize_fundus,
    synthesize_non_fundus,
)
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) not installed")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium not installed (apt-get install chromium)", allow_module_level=True)


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The demo gateway: local backend on the tiny model, auth off (loopback only)."""
    process = GatewayProcess(
        {
            "DRG_BACKEND": "local",
            "DRG_MODEL_DIR": str(model_root),
            "DRG_AUTH": "disabled",
            "DRG_ENVIRONMENT": "development",
            "DRG_READINESS_CACHE_S": "0",
            # The first Grad-CAM call of a cold in-process model can take >10 s on a busy CI box.
            "DRG_BACKEND_TIMEOUT_S": "60",
            "DRG_REQUEST_TIMEOUT_S": "90",
            "DRG_SHUTDOWN_GRACE_S": "95",  # must exceed the request timeout
        },
        lean_protos=Path("/nonexistent"),
        log_path=tmp_path_factory.mktemp("gw-demo") / "gateway.log",
    ).start(timeout_s=180)
    process.wait_ready(timeout_s=120)
    # Warm up both signatures so the browser's first request is not the cold one.
    photo = encode_png(synthesize_fundus(1, width=400, height=300, seed=5))
    warm = httpx.post(
        process.url + "/v1/exams?explain=true", files={"left": photo, "right": photo}, timeout=120
    )
    assert warm.status_code == 200, warm.text
    yield process
    process.stop()


@pytest.fixture(scope="module")
def secured(
    lean_protos: Path, keys_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A production-like lean gateway (API keys on) whose model server is down: nothing
    listens on its TF Serving target. Starts in seconds (no TensorFlow)."""
    process = GatewayProcess(
        {
            "DRG_BACKEND": "tfserving",
            "DRG_TFSERVING_TARGET": f"127.0.0.1:{free_port()}",
            "DRG_API_KEYS_FILE": str(keys_file),
            "DRG_BACKEND_TIMEOUT_S": "2",
            "DRG_BACKEND_RETRY_ATTEMPTS": "1",
            "DRG_READINESS_CACHE_S": "0",
        },
        lean_protos,
        tmp_path_factory.mktemp("gw-secured") / "gateway.log",
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium with a fresh profile; no browser is downloaded."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=LAPTOP,
            accept_downloads=False,
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """One tab on a gateway, recording console errors and every URL it requests."""

    def __init__(self, context: Any, base_url: str) -> None:
        self.base_url = base_url
        self.page = context.new_page()
        self.page.set_viewport_size(LAPTOP)
        self.page.set_default_timeout(60_000)
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        # Intercept file dialogs from the start: with expect_file_chooser() armed only around
        # the key press, Chromium now and then opens its own (invisible) dialog first.
        self.choosers: list[Any] = []
        self.page.on("filechooser", self._chooser_opened)
        self.page.goto(base_url + "/")
        self.page.wait_for_selector("body[data-ready='true']")

    def _chooser_opened(self, chooser: Any) -> None:
        self.choosers.append(chooser)

    def _console(self, message: Any) -> None:
        # A 4xx/5xx answer is logged by Chromium as a failed resource; the page handles those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def eye(self, eye: str, name: str) -> Any:
        return self.page.locator(f"#eye-{eye} [data-field='{name}']")

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text()).strip()

    def chooser(self, timeout_s: float = 10.0) -> Any:
        """The file dialog opened by the last key press or click."""
        deadline = time.monotonic() + timeout_s
        while not self.choosers and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        assert self.choosers, "no file dialog opened"
        return self.choosers.pop()

    def drop(self, eye: str, path: Path, mime: str) -> None:
        """Drag-and-drop ``path`` onto the eye's box, as a file dragged from the desktop."""
        self.page.evaluate(
            """([eye, name, mime, data]) => {
              const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
              const transfer = new DataTransfer();
              transfer.items.add(new File([bytes], name, {type: mime}));
              const zone = document.querySelector(`[data-drop="${eye}"]`);
              for (const type of ['dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                        cancelable: true}));
              }
            }""",
            [eye, path.name, mime, base64.b64encode(path.read_bytes()).decode()],
        )

    def grade(self) -> str:
        """Press Grade, wait until the request finished (results or an error), return the
        status line and the alert, if any (for assertion messages)."""
        self.page.click("#grade-button")
        self.page.wait_for_function(
            "() => document.getElementById('grade-button').ariaDisabled !== 'true' && "
            "/^(Graded|Grading failed)/.test(document.getElementById('status').textContent)"
        )
        alert = self.page.locator("#alert")
        return self.text("#status") + (f" | {alert.inner_text()}" if alert.is_visible() else "")

    def grade_ok(self) -> None:
        """Press Grade and expect results."""
        outcome = self.grade()
        assert outcome.startswith("Graded."), outcome

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        off_origin = [
            url
            for url in self.requests
            if not url.startswith(self.base_url + "/") and not url.startswith("data:")
        ]
        self.page.close()
        assert not off_origin, f"requests outside the gateway: {off_origin}"
        assert not self.problems, self.problems


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files for the file inputs: JPEG, PNG, DICOM fundus photos, ungradable and broken ones."""
    folder = tmp_path_factory.mktemp("images")
    right = encode_jpeg(synthesize_fundus(3, width=1000, height=750, seed=11))
    files = {
        "right.jpg": right,
        "left.png": encode_png(
            synthesize_fundus(0, width=900, height=700, seed=12, laterality="L")
        ),
        "left.dcm": encode_dicom(
            synthesize_fundus(2, width=800, height=600, seed=13, laterality="L"), laterality="L"
        ),
        "document.png": encode_png(synthesize_non_fundus("document", seed=1)),
        "blurred.jpg": encode_jpeg(
            synthesize_fundus(1, width=1000, height=750, seed=14, blur_sigma=14)
        ),
        "truncated.jpg": right[: len(right) // 3],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def api(base_url: str, route: str, files: dict[str, Path], **headers: str) -> dict[str, Any]:
    """The gateway's JSON for the same files, asked directly."""
    response = httpx.post(
        f"{base_url}{route}",
        files={field: (path.name, path.read_bytes()) for field, path in files.items()},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_eye_matches(page: Page, eye: str, expected: dict[str, Any]) -> None:
    """Grade, label, referral, probabilities, action and recommendation as in the API JSON."""
    assert page.eye(eye, "result").is_visible()
    assert page.eye(eye, "recommendation").inner_text().strip() == expected["recommendation"]
    assert page.eye(eye, "action").get_attribute("data-action") == expected["action"]
    if not expected["quality"]["gradable"]:
        assert "NOT gradable" in page.eye(eye, "quality").inner_text()
        assert not page.eye(eye, "grade-line").is_visible()
        assert not page.eye(eye, "probs").is_visible()
        return
    assert "gradable" in page.eye(eye, "quality").inner_text()
    assert page.eye(eye, "grade").inner_text().strip() == str(expected["grade"])
    assert page.eye(eye, "grade-label").inner_text().strip() == expected["grade_label"]
    referable = page.eye(eye, "referable")
    assert referable.get_attribute("data-referable") == str(expected["referable"]).lower()
    assert referable.inner_text().startswith(
        "Referable" if expected["referable"] else "Not referable"
    )
    for grade, probability in expected["probabilities"].items():
        shown = page.eye(eye, f"prob-{grade}").inner_text()
        value = float(re.fullmatch(r"([\d.]+) %", shown.strip()).group(1))  # type: ignore[union-attr]
        assert abs(value - probability * 100) <= 0.05 + 1e-9, (eye, grade, shown, probability)
    predicted = page.page.locator(f"#eye-{eye} .probs li.predicted")
    assert predicted.get_attribute("data-grade") == str(expected["grade"])


def shown_grade_names(page: Page, eye: str) -> list[tuple[str, str]]:
    """(short name, full name in the tooltip) of each probability bar, grade 0 first."""
    names = page.page.locator(f"#eye-{eye} .probs abbr")
    return [
        (names.nth(i).inner_text().strip(), names.nth(i).get_attribute("title") or "")
        for i in range(names.count())
    ]


# ------------------------------------------------------------------------------- tests


def test_exam_page_shows_what_the_api_answers(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    gateway = demo
    page = Page(browser, gateway.url)
    assert page.page.locator("#auth").is_hidden()  # demo mode: no key needed, none asked for
    assert "Ready" in page.text("#service")
    page.page.set_input_files("#file-right", str(images["right.jpg"]))
    page.page.set_input_files("#file-left", str(images["left.png"]))
    page.page.wait_for_selector("#eye-left [data-field='photo']:visible")
    # Progress indication: record the busy state the page shows while the request runs.
    page.page.evaluate(
        """() => {
          window.busySeen = [];
          const progress = document.getElementById('progress');
          const button = document.getElementById('grade-button');
          new MutationObserver(() => window.busySeen.push([!progress.hidden,
            button.getAttribute('aria-disabled') === 'true',
            document.getElementById('status').textContent]))
            .observe(document.body, {subtree: true, attributes: true, childList: true});
        }"""
    )
    page.grade_ok()
    busy = page.page.evaluate("window.busySeen")
    assert any(
        shown and disabled and text.startswith("Grading both eyes")
        for shown, disabled, text in busy
    )
    assert page.page.locator("#progress").is_hidden()

    expected = api(
        gateway.url,
        "/v1/exams?explain=true",
        {"left": images["left.png"], "right": images["right.jpg"]},
    )
    for eye in ("left", "right"):
        assert_eye_matches(page, eye, expected[eye])
    scale = httpx.get(gateway.url + "/v1/grading-scale").json()
    names = [(grade["short_name"], grade["name"]) for grade in scale["grades"]]
    assert shown_grade_names(page, "right") == names
    patient = expected["patient"]
    assert page.page.locator("#patient-action").get_attribute("data-action") == patient["action"]
    assert page.text("#patient-summary") == patient["summary"]
    assert page.text("#patient-referable") == ("Yes" if patient["referable"] else "No")
    assert page.text("#patient-deciding").lower() == (patient["deciding_eye"] or "–")
    assert page.text("#status").startswith("Graded.")
    assert page.page.evaluate("document.activeElement.id") == "patient-title"
    if expected["model_warning"]:
        assert page.text("#model-warning") == expected["model_warning"]
    assert f"version {expected['model']['version']}" in page.text("#meta")

    # Grad-CAM: hidden until asked for; the toggle shows it, the slider sets its opacity.
    overlay = page.eye("right", "overlay")
    assert overlay.is_hidden()
    source = overlay.get_attribute("src") or ""
    assert source.startswith("data:image/png;base64,")
    assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    page.page.check("#heatmap-right")
    assert overlay.is_visible()
    assert overlay.evaluate("img => img.complete && img.naturalWidth > 0")
    assert float(overlay.evaluate("img => getComputedStyle(img).opacity")) == pytest.approx(0.7)
    page.page.locator("#opacity-right").fill("30")
    assert float(overlay.evaluate("img => getComputedStyle(img).opacity")) == pytest.approx(0.3)
    assert page.eye("right", "opacity-value").inner_text() == "30 %"
    page.page.check("#heatmap-left")
    page.shot("exam-laptop")
    page.page.uncheck("#heatmap-right")
    assert overlay.is_hidden()
    page.page.check("#heatmap-right")

    page.page.set_viewport_size(TABLET)
    assert page.page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), "horizontal scrolling on a tablet"
    page.shot("exam-tablet")
    page.close()


def test_grade_names_come_from_the_served_scale(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    """The page has no copy of the names: a different scale answer shows different names."""
    scale = httpx.get(demo.url + "/v1/grading-scale").json()
    for grade in scale["grades"]:
        grade["name"], grade["short_name"] = f"Name {grade['grade']}", f"G{grade['grade']}"
    browser.route("**/v1/grading-scale", lambda route: route.fulfill(json=scale))
    try:
        page = Page(browser, demo.url)
        page.page.set_input_files("#file-right", str(images["right.jpg"]))
        page.page.set_input_files("#file-left", str(images["left.png"]))
        page.grade_ok()
        assert f"{demo.url}/v1/grading-scale" in page.requests
        expected = [(f"G{n}", f"Name {n}") for n in range(len(scale["grades"]))]
        assert shown_grade_names(page, "left") == expected
        worst = page.text("#patient-worst")
        assert re.fullmatch(r"(\d) \(Name \1\)", worst), worst
        page.close()
    finally:
        browser.unroute("**/v1/grading-scale")


def test_ungradable_corrupt_and_single_eye(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    gateway = demo
    page = Page(browser, gateway.url)

    # An ungradable photograph: retake advice on that eye, in-person exam for the patient.
    page.drop("right", images["document.png"], "image/png")
    assert page.text("#eye-right [data-field='file-name']").startswith("document.png")
    page.page.set_input_files("#file-left", str(images["blurred.jpg"]))
    page.grade_ok()
    expected = api(
        gateway.url,
        "/v1/exams?explain=true",
        {"left": images["blurred.jpg"], "right": images["document.png"]},
    )
    assert not expected["right"]["quality"]["gradable"]
    for eye in ("left", "right"):
        assert_eye_matches(page, eye, expected[eye])
    assert "Retake the photograph" in page.eye("right", "recommendation").inner_text()
    assert "does not look like a fundus photograph" in page.eye("right", "quality").inner_text()
    assert expected["patient"]["action"] == "retake_or_refer_in_person"
    assert (
        page.page.locator("#patient-action").get_attribute("data-action")
        == (expected["patient"]["action"])
    )
    assert page.text("#patient-summary") == expected["patient"]["summary"]
    assert page.eye("right", "heatmap-controls").is_hidden()
    page.shot("ungradable-laptop")

    # A truncated JPEG: the whole exam is refused; the page says which eye and what to do.
    page.page.set_input_files("#file-right", str(images["truncated.jpg"]))
    page.page.set_input_files("#file-left", str(images["left.png"]))
    page.grade()
    error = page.eye("right", "error")
    assert error.is_visible()
    assert "damaged or incomplete" in error.inner_text()
    assert page.eye("left", "error").is_hidden()
    alert = page.text("#alert")
    assert alert.startswith("The right-eye file cannot be graded")
    assert "remove it to grade the left eye alone" in alert
    assert page.page.locator("#patient").is_hidden()
    assert page.page.evaluate("document.activeElement.id") == "grade-button"  # focus kept
    page.shot("corrupt-laptop")

    # Remove the bad eye: the other one is graded alone through /v1/grade.
    page.page.click("[data-remove='right']")
    page.page.set_input_files("#file-left", str(images["left.dcm"]))
    page.grade_ok()
    single = api(gateway.url, "/v1/grade?explain=true&laterality=L", {"image": images["left.dcm"]})
    assert_eye_matches(page, "left", single)
    assert page.eye("right", "result").is_hidden()
    assert "incomplete" in page.text("#patient-title")
    # No browser preview of a DICOM file: the gateway's Grad-CAM picture is shown as returned.
    assert page.eye("left", "photo").is_hidden()
    assert page.eye("left", "overlay").is_visible()
    assert page.eye("left", "opacity").is_disabled()
    page.page.set_viewport_size(TABLET)
    page.shot("single-dicom-tablet")
    page.close()


def test_auth_failures_then_a_valid_key(
    browser: Any, secured: GatewayProcess, images: dict[str, Path]
) -> None:
    """No key, a wrong key, then the right one: the right one gets past authentication to the
    (absent) model server, whose failure the page reports."""
    page = Page(browser, secured.url)
    assert page.page.locator("#auth").is_hidden()  # the page cannot know before a 401
    page.page.set_input_files("#file-right", str(images["right.jpg"]))

    page.grade()
    assert page.page.locator("#auth").is_visible()
    assert page.text("#alert") == "Authentication needed: enter your API key."
    assert page.page.evaluate("document.activeElement.id") == "api-key"
    assert page.eye("right", "result").is_hidden()

    page.page.fill("#api-key", "not-the-key")
    page.grade()
    assert page.text("#alert") == "Authentication failed: the API key was not accepted."
    assert "not accepted" in page.text("#auth-hint")
    assert page.page.evaluate("sessionStorage.getItem('drg.apiKey')") is None
    page.shot("auth-failure-laptop")

    page.page.fill("#api-key", API_KEY)
    page.grade()
    assert page.text("#alert").startswith("The model server cannot be reached right now.")
    assert page.page.evaluate("sessionStorage.getItem('drg.apiKey')") == API_KEY
    assert page.page.evaluate("localStorage.length") == 0
    page.page.click("#forget-key")
    assert page.page.evaluate("sessionStorage.getItem('drg.apiKey')") is None
    page.close()


def test_model_server_down(browser: Any, secured: GatewayProcess, images: dict[str, Path]) -> None:
    """A real gateway whose TF Serving is unreachable: the page says so and grades nothing.
    The key saved in this tab is used without asking again."""
    page = Page(browser, secured.url)
    page.page.evaluate(f"sessionStorage.setItem('drg.apiKey', {API_KEY!r})")
    page.page.reload()
    page.page.wait_for_selector("body[data-ready='true']")
    assert page.text("#auth-hint") == "Using the API key saved in this tab."
    page.page.wait_for_selector("#service[data-state='down']")
    assert page.text("#service") == (
        "Grading service not ready: The model server cannot be reached right now."
    )
    page.page.set_input_files("#file-right", str(images["right.jpg"]))
    page.page.set_input_files("#file-left", str(images["left.png"]))
    page.grade()
    alert = page.text("#alert")
    assert alert.startswith("The model server cannot be reached right now. Try again"), alert
    for eye in ("right", "left"):
        assert page.eye(eye, "result").is_hidden()
    assert page.page.locator("#patient").is_hidden()
    page.shot("backend-down-laptop")
    page.close()


def test_busy_and_unreachable_backend_messages(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    """Answers the demo gateway cannot be made to give on demand, played by the browser."""
    gateway = demo
    page = Page(browser, gateway.url)
    page.page.set_input_files("#file-left", str(images["left.png"]))
    answers = iter(
        [
            (503, {"error": {"code": "overloaded", "message": "too many requests"}}, "7"),
            (503, {"error": {"code": "backend_unavailable", "message": "down"}}, "5"),
            (504, {"error": {"code": "backend_timeout", "message": "slow"}}, None),
            (500, {"error": {"code": "internal_error", "message": "bug"}}, None),
        ]
    )

    def answer(route: Any) -> None:
        status, body, retry = next(answers)
        headers = {"X-Request-ID": "req-123"} | ({"Retry-After": retry} if retry else {})
        route.fulfill(status=status, json=body, headers=headers)

    page.page.route("**/v1/grade*", answer)
    expected = [
        "The grading service is busy. Try again in 7 s.",
        "The model server cannot be reached right now. Try again in 5 s.",
        "The model server did not answer in time. Try again in a moment.",
        "The gateway failed unexpectedly. If this persists, contact support (reference req-123).",
    ]
    for text in expected:
        page.grade()
        assert page.text("#alert") == text
    page.page.unroute("**/v1/grade*")
    page.page.route("**/v1/grade*", lambda route: route.abort("connectionrefused"))
    page.grade()
    assert page.text("#alert").startswith("Cannot reach the grading gateway")
    page.page.unroute("**/v1/grade*")
    page.shot("unreachable-laptop")
    page.problems.clear()  # the aborted request is logged as a network error
    page.close()


def test_keyboard_only_use(browser: Any, demo: GatewayProcess, images: dict[str, Path]) -> None:
    """Tab reaches every control in reading order, focus is visible, files are chosen and the
    exam is graded without a mouse."""
    page = Page(browser, demo.url)
    order: list[str] = []
    while len(order) < 12 and "grade-button" not in order:  # stay inside the page
        page.page.keyboard.press("Tab")
        order.append(
            page.page.evaluate("document.activeElement.id || document.activeElement.className")
        )
    assert order[0] == "skip-link"
    assert order.index("file-right") < order.index("file-left") < order.index("grade-button")
    page.page.keyboard.press("Shift+Tab")
    focused = page.page.evaluate("document.activeElement.id")
    assert page.page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none", (
        f"no visible focus on {focused}"
    )

    for eye, name in (("right", "right.jpg"), ("left", "left.png")):
        page.page.focus(f"#file-{eye}")
        page.page.keyboard.press("Space")
        page.chooser().set_files(str(images[name]))
        page.page.wait_for_selector(f"#eye-{eye} [data-field='photo']:visible")
    page.page.focus("#grade-button")
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#patient:not([hidden])")
    page.page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('Graded')"
    )
    page.page.keyboard.press("Tab")  # from the results heading into the page
    assert page.page.evaluate("document.activeElement.tagName") in {"INPUT", "BUTTON", "A"}
    page.close()
