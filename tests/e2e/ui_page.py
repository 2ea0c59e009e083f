"""The clinician page in a headless Chromium: one tab on a gateway (``Page``) and the checks
that compare what the page shows with the gateway's JSON. Used by ``test_ui.py``."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from harness.processes import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
# The page's sentences for the quality reasons (gateway/ui/messages.js REASON_TEXT).
REASON_TEXT = {
    "no_fundus_disc": "does not look like a fundus photograph",
    "too_dark": "too dark",
    "overexposed": "over-exposed",
    "blurred": "out of focus",
    "low_resolution": "resolution too low",
}
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

    def drop(self, eye: str, paths: list[Path], mime: str) -> None:
        """Drag-and-drop ``paths`` onto the eye's box, as files dragged from the desktop."""
        self.page.evaluate(
            """([eye, mime, files]) => {
              const transfer = new DataTransfer();
              for (const [name, data] of files) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, {type: mime}));
              }
              const zone = document.querySelector(`[data-drop="${eye}"]`);
              for (const type of ['dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                        cancelable: true}));
              }
            }""",
            [eye, mime, [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in paths]],
        )

    def cards(self, eye: str) -> Any:
        """The photograph cards of one eye, in the order sent."""
        return self.page.locator(f"#eye-{eye} .photo-card")

    def add(self, eye: str, *paths: Path) -> None:
        """Choose ``paths`` in the eye's file input (one dialog, several files)."""
        before = self.cards(eye).count()
        self.page.set_input_files(f"#file-{eye}", [str(path) for path in paths])
        self.page.wait_for_function(
            f"document.querySelectorAll('#eye-{eye} .photo-card').length > {before}"
        )

    def card(self, eye: str, index: int, part: str) -> Any:
        return self.cards(eye).nth(index).locator(f"[data-part='{part}']")

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


def api(base_url: str, files: list[tuple[str, Path]], route: str = "/v1/exams") -> dict[str, Any]:
    """The gateway's JSON for the same files (field, path; fields may repeat), asked directly."""
    response = httpx.post(
        f"{base_url}{route}?explain=true",
        files=[(field, (path.name, path.read_bytes())) for field, path in files],
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_eye_matches(page: Page, eye: str, expected: dict[str, Any]) -> None:
    """The eye result (grade, label, referral, vision-threatening, probabilities, action,
    recommendation) and every photograph's verdict as in the API JSON."""
    assert page.eye(eye, "result").is_visible()
    assert page.eye(eye, "recommendation").inner_text().strip() == expected["recommendation"]
    assert page.eye(eye, "action").get_attribute("data-action") == expected["action"]
    vision = page.eye(eye, "vision").get_attribute("data-vision-threatening")
    assert vision == json.dumps(expected["vision_threatening"]), (eye, vision)
    assert page.cards(eye).count() == len(expected["images"])
    for index, image in enumerate(expected["images"]):
        assert_photo_matches(page, eye, index, image, index == expected["deciding_image"])
    if not expected["quality"]["gradable"]:
        assert expected["deciding_image"] is None
        assert "Insufficient quality" in page.eye(eye, "quality").inner_text()
        assert page.eye(eye, "deciding").is_hidden()
        assert not page.eye(eye, "grade-line").is_visible()
        assert not page.eye(eye, "probs").is_visible()
        return
    assert page.eye(eye, "quality").inner_text().startswith("Gradable")
    decided = f"Decided by photograph {expected['deciding_image'] + 1} "
    assert page.eye(eye, "deciding").inner_text().startswith(decided)
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


def assert_photo_matches(
    page: Page, eye: str, index: int, expected: dict[str, Any], deciding: bool
) -> None:
    """One photograph's card: its quality verdict (or reasons), grade, and the deciding mark."""
    card = page.cards(eye).nth(index)
    assert card.get_attribute("data-photo") == str(index)
    assert card.get_attribute("data-gradable") == json.dumps(expected["quality"]["gradable"])
    quality = page.card(eye, index, "quality").inner_text()
    grade = page.card(eye, index, "grade")
    if expected["quality"]["gradable"]:
        assert quality.startswith("Gradable"), quality
        assert grade.get_attribute("data-grade") == str(expected["grade"])
        assert expected["grade_label"] in grade.inner_text()
    else:
        assert quality.startswith("NOT gradable"), quality
        for reason in expected["quality"]["reasons"]:
            assert REASON_TEXT[reason] in quality, (reason, quality)
        assert grade.is_hidden()
    assert page.card(eye, index, "deciding").is_visible() == deciding
    assert ("deciding" in (card.get_attribute("class") or "").split()) == deciding


def assert_patient_matches(page: Page, patient: dict[str, Any]) -> None:
    """The patient-level result as in the API JSON, the macular-oedema caveat included."""
    assert page.page.locator("#patient-action").get_attribute("data-action") == patient["action"]
    assert page.text("#patient-summary") == patient["summary"]
    assert page.text("#patient-referable") == ("Yes" if patient["referable"] else "No")
    assert page.text("#patient-vision") == ("Yes" if patient["vision_threatening"] else "No")
    quality = page.text("#patient-quality")
    assert quality.startswith("Yes" if patient["insufficient_quality"] else "No"), quality
    assert page.text("#patient-deciding").lower() == (patient["deciding_eye"] or "–")
    missing = page.text("#patient-missing")
    if patient["missing_eyes"]:
        for eye in patient["missing_eyes"]:
            assert eye.capitalize() in missing
            assert f"{eye} eye not examined" in page.text("#patient-title")
    else:
        assert missing == "None"
    assert page.text("#patient-caveat") == patient["caveat"]


def shown_grade_names(page: Page, eye: str) -> list[tuple[str, str]]:
    """(short name, full name in the tooltip) of each probability bar, grade 0 first."""
    names = page.page.locator(f"#eye-{eye} .probs abbr")
    return [
        (names.nth(i).inner_text().strip(), names.nth(i).get_attribute("title") or "")
        for i in range(names.count())
    ]
