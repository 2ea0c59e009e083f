"""The clinician page in a real headless Chromium (Debian's, driven by Playwright) against real
gateway processes (local backend, tiny model): what the page shows must be what the API says.

Several photographs per eye (added, removed, each one's verdict in its eye's panel, the deciding
one marked), the eye and patient results, and the refusals (a damaged file, a DICOM of the other
eye, more photographs than the gateway takes). Screenshots (laptop 1366x768, tablet 820x1180) go
to ``artifacts/ui/`` as the test's evidence. The tab helper and the checks are in ``ui_page.py``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import GatewayProcess, free_port
from synthetic import (
    encode_dicom,
    encode_jpeg,
    encode_png,
    synthesize_fundus,
    synthesize_non_fundus,
)
from tests.e2e.ui_page import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LAPTOP,
    TABLET,
    Page,
    api,
    assert_eye_matches,
    assert_patient_matches,
    shown_grade_names,
)
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.slow

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
            # Below the page's own limit (4, the default): a fourth photograph of one eye is
            # then refused by the gateway (413 too_many_images), which the page must show.
            "DRG_MAX_IMAGES_PER_EYE": "3",
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
        "right2.jpg": encode_jpeg(synthesize_fundus(0, width=1000, height=750, seed=21)),
        "right3.png": encode_png(synthesize_fundus(1, width=800, height=600, seed=22)),
        "noise.png": encode_png(synthesize_non_fundus("noise", seed=2)),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


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

    expected = api(gateway.url, [("left", images["left.png"]), ("right", images["right.jpg"])])
    for eye in ("left", "right"):
        assert_eye_matches(page, eye, expected[eye])
    scale = httpx.get(gateway.url + "/v1/grading-scale").json()
    names = [(grade["short_name"], grade["name"]) for grade in scale["grades"]]
    assert shown_grade_names(page, "right") == names
    assert_patient_matches(page, expected["patient"])
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


def test_several_photographs_per_eye(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    """Two photographs of the right eye (a third added and removed) and one of the left: three
    verdicts, the deciding photograph of each eye marked, the eye and patient results."""
    page = Page(browser, demo.url)
    page.add("right", images["right.jpg"], images["right2.jpg"])  # one dialog, two files
    page.drop("right", [images["right3.png"]], "image/png")
    page.page.wait_for_function("document.querySelectorAll('#eye-right .photo-card').length == 3")
    page.add("left", images["left.png"])
    assert page.eye("right", "count").inner_text().startswith("3 photographs of at most 4")
    page.page.wait_for_selector("#eye-right .photo-card:nth-child(3) canvas.thumb-canvas")
    page.shot("several-before-remove-laptop")

    page.card("right", 2, "remove").click()
    assert page.cards("right").count() == 2
    assert "right3.png" not in page.eye("right", "photos").inner_text()
    assert page.text("#status").startswith("Photograph 3 (right3.png) was removed")
    assert page.card("right", 1, "remove").get_attribute("aria-label") == (
        "Remove right-eye photograph 2 (right2.jpg)"
    )
    page.page.evaluate(  # record the form the page sends (Playwright hides multipart bodies)
        """() => {
          const send = window.fetch;
          window.fetch = (url, init) => {
            if (init && init.body instanceof FormData) {
              window.sent = [url, [...init.body.entries()].map(([k, v]) => [k, v.name])];
            }
            return send(url, init);
          };
        }"""
    )
    page.grade_ok()
    url, fields = page.page.evaluate("window.sent")
    assert url == "/v1/exams?explain=true"
    # In the order shown; the removed photograph is not sent.
    assert fields == [["right", "right.jpg"], ["right", "right2.jpg"], ["left", "left.png"]]

    expected = api(
        demo.url,
        [
            ("right", images["right.jpg"]),
            ("right", images["right2.jpg"]),
            ("left", images["left.png"]),
        ],
    )
    for eye in ("left", "right"):
        assert_eye_matches(page, eye, expected[eye])
    assert page.page.locator(".photo-card [data-part='verdict']:visible").count() == 3
    assert page.page.locator(".photo-card.deciding").count() == 2  # one per eye
    assert_patient_matches(page, expected["patient"])
    assert page.text("#status").startswith("Graded.")

    # The viewer shows the deciding photograph; a thumbnail shows another one, with its heat map.
    deciding = expected["right"]["deciding_image"]
    assert page.card("right", deciding, "view").get_attribute("aria-pressed") == "true"
    other = 1 - deciding
    page.card("right", other, "view").click()
    assert page.card("right", other, "view").get_attribute("aria-pressed") == "true"
    assert page.card("right", deciding, "view").get_attribute("aria-pressed") == "false"
    assert page.eye("right", "caption").inner_text().startswith(f"Photograph {other + 1} ")
    source = page.eye("right", "overlay").get_attribute("src") or ""
    heatmap = expected["right"]["images"][other]["heatmap_png_base64"]
    assert source == f"data:image/png;base64,{heatmap}"  # that photograph's own Grad-CAM
    page.page.check("#heatmap-right")
    assert page.eye("right", "overlay").is_visible()
    page.shot("several-laptop")
    page.page.set_viewport_size(TABLET)
    assert page.page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), "horizontal scrolling on a tablet"
    page.shot("several-tablet")
    page.close()


def test_too_many_photographs_and_a_missing_eye(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    """The page takes at most 4 photographs per eye; this gateway takes 3 and answers 413,
    which the page shows, then adopts. One eye only: the patient result names the other."""
    page = Page(browser, demo.url)
    five = ["left.png", "right.jpg", "right2.jpg", "right3.png", "blurred.jpg"]
    page.add("left", *(images[name] for name in five))
    assert page.cards("left").count() == 4
    error = page.eye("left", "error")
    assert error.inner_text().startswith("At most 4 photographs per eye: 1 file not added.")
    page.page.set_input_files("#file-left", str(images["left.png"]))  # a sixth: refused too
    assert page.cards("left").count() == 4

    direct = httpx.post(
        demo.url + "/v1/exams",
        files=[("left", (name, images[name].read_bytes())) for name in five[:4]],
        timeout=60,
    )
    assert direct.status_code == 413
    assert direct.json()["error"]["code"] == "too_many_images"
    outcome = page.grade()
    assert outcome.startswith("Grading failed."), outcome
    assert page.text("#alert").startswith("This gateway accepts at most 3 photographs per eye.")
    assert "remove 1 photograph" in page.eye("left", "error").inner_text()
    assert page.eye("left", "count").inner_text() == (
        "4 photographs of at most 3: remove one to add another."
    )
    assert page.page.locator("#patient").is_hidden()
    page.shot("too-many-laptop")

    page.card("left", 3, "remove").click()
    page.grade_ok()
    expected = api(demo.url, [("left", images[name]) for name in five[:3]])
    assert expected["right"] is None and expected["patient"]["missing_eyes"] == ["right"]
    assert_eye_matches(page, "left", expected["left"])
    assert page.eye("right", "result").is_hidden()
    assert_patient_matches(page, expected["patient"])
    page.shot("missing-eye-laptop")
    page.close()


def test_an_eye_with_only_ungradable_photographs(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    page = Page(browser, demo.url)
    page.drop("right", [images["document.png"], images["noise.png"]], "image/png")
    page.page.wait_for_function("document.querySelectorAll('#eye-right .photo-card').length == 2")
    page.add("left", images["left.png"])
    page.grade_ok()
    expected = api(
        demo.url,
        [
            ("right", images["document.png"]),
            ("right", images["noise.png"]),
            ("left", images["left.png"]),
        ],
    )
    assert not expected["right"]["quality"]["gradable"]
    assert expected["patient"]["insufficient_quality"]
    for eye in ("left", "right"):
        assert_eye_matches(page, eye, expected[eye])
    assert page.eye("right", "result").get_attribute("data-insufficient") == "true"
    assert "does not look like a fundus photograph" in page.card("right", 0, "quality").inner_text()
    assert page.page.locator("#eye-right .photo-card.deciding").count() == 0
    assert page.eye("right", "vision").inner_text().startswith("Vision-threatening DR: unknown")
    assert page.text("#patient-quality").startswith("Yes")
    assert page.eye("right", "heatmap-controls").is_hidden()
    page.shot("insufficient-quality-laptop")
    page.close()


def test_refusals_name_the_photograph(
    browser: Any, demo: GatewayProcess, images: dict[str, Path]
) -> None:
    """A damaged file (right[1]) and a DICOM of the other eye (422 laterality_mismatch) are
    shown on their own card; a DICOM alone is graded and its heat map shown as returned."""
    page = Page(browser, demo.url)
    page.add("right", images["right.jpg"], images["truncated.jpg"])
    page.add("left", images["left.png"])
    page.grade()
    assert "failed" in (page.cards("right").nth(1).get_attribute("class") or "").split()
    assert "damaged or incomplete" in page.card("right", 1, "error").inner_text()
    assert page.card("right", 0, "error").is_hidden()
    assert page.eye("right", "error").inner_text().startswith("Photograph 2 cannot be graded")
    assert page.eye("left", "error").is_hidden()
    assert page.text("#alert").startswith(
        "The right-eye photograph 2 (truncated.jpg) cannot be graded"
    )
    assert page.page.locator("#patient").is_hidden()
    assert page.page.evaluate("document.activeElement.id") == "grade-button"  # focus kept
    page.shot("corrupt-laptop")

    page.card("right", 1, "remove").click()
    page.add("right", images["left.dcm"])  # a left-eye DICOM in the right eye's panel
    page.grade()
    assert "records the other eye" in page.card("right", 1, "error").inner_text()
    assert page.text("#alert").startswith("The right-eye photograph 2 (left.dcm) cannot be")
    page.shot("laterality-mismatch-laptop")

    page.page.click("#clear-button")
    assert page.cards("right").count() == 0 and page.cards("left").count() == 0
    page.add("left", images["left.dcm"])
    page.grade_ok()
    expected = api(demo.url, [("left", images["left.dcm"])])
    assert_eye_matches(page, "left", expected["left"])
    assert_patient_matches(page, expected["patient"])
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

    page.page.route("**/v1/exams*", answer)
    expected = [
        "The grading service is busy. Try again in 7 s.",
        "The model server cannot be reached right now. Try again in 5 s.",
        "The model server did not answer in time. Try again in a moment.",
        "The gateway failed unexpectedly. If this persists, contact support (reference req-123).",
    ]
    for text in expected:
        page.grade()
        assert page.text("#alert") == text
    page.page.unroute("**/v1/exams*")
    page.page.route("**/v1/exams*", lambda route: route.abort("connectionrefused"))
    page.grade()
    assert page.text("#alert").startswith("Cannot reach the grading gateway")
    page.page.unroute("**/v1/exams*")
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
