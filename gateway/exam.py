"""One eye from several photographs: the aggregation rule of a screening exam.

Rule (docs/architecture.md, "Exams"): an eye takes the result of its *worst gradable
photograph*, ordered by (referable, grade, P(referable)). The fields of one eye (macula- and
disc-centred) show different parts of the retina, so a lesion seen in any one of them counts
for the eye, as human graders grade an eye by the worst field. Ungradable photographs do not
lower the eye's result when another one is gradable; an eye without a gradable photograph is
of insufficient quality (retake, or an in-person examination). The eye's referable flag is
therefore "any gradable photograph referable", its grade the highest grade among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fundus.types import Laterality, QualityReport
from gateway import clinical

Eye = Literal["left", "right"]


class Photo(Protocol):
    """One graded (or ungradable) photograph: a fresh ``EyeOutcome`` or a ``StoredPhoto``."""

    @property
    def quality(self) -> QualityReport: ...
    @property
    def laterality(self) -> Laterality | None: ...
    @property
    def grade(self) -> int | None: ...
    @property
    def probabilities(self) -> Sequence[float] | None: ...
    @property
    def referable(self) -> bool | None: ...
    @property
    def referable_probability(self) -> float | None: ...
    @property
    def heatmap_png_base64(self) -> str | None: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def action(self) -> clinical.Action: ...
    @property
    def recommendation(self) -> str: ...


@dataclass(frozen=True)
class StoredPhoto:
    """A photograph's result read back from the store (the JSON of ``results.eye_result``):
    how a PACS study adds an instance received in an earlier request to its exam."""

    quality: QualityReport
    laterality: Laterality | None
    grade: int | None
    probabilities: Sequence[float] | None
    referable: bool | None
    referable_probability: float | None
    action: clinical.Action
    recommendation: str
    heatmap_png_base64: str | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> StoredPhoto:
        """From one ``EyeResult`` JSON document."""
        quality = result["quality"]
        probabilities = result.get("probabilities")
        return cls(
            quality=QualityReport(
                bool(quality["gradable"]), float(quality["score"]), tuple(quality["reasons"])
            ),
            laterality=result.get("laterality"),
            grade=result.get("grade"),
            probabilities=(
                None
                if probabilities is None
                else [float(probabilities[key]) for key in sorted(probabilities, key=int)]
            ),
            referable=result.get("referable"),
            referable_probability=result.get("referable_probability"),
            action=result["action"],
            recommendation=result["recommendation"],
            warnings=list(result.get("warnings") or []),
        )


@dataclass(frozen=True)
class EyeExam:
    """The photographs of one eye, in the order sent, and the one that decides the eye."""

    eye: Eye
    images: Sequence[Photo]

    @property
    def deciding_index(self) -> int | None:
        """Index in ``images`` of the worst gradable photograph (None: none is gradable)."""
        ranked = [
            # P(referable) as published (6 decimals), so a study rebuilt from stored results
            # picks the same photograph as the request that graded them; ties: the first sent.
            (
                bool(image.referable),
                image.grade,
                round(image.referable_probability or 0.0, 6),
                -index,
            )
            for index, image in enumerate(self.images)
            if image.grade is not None
        ]
        return -max(ranked)[3] if ranked else None

    @property
    def deciding(self) -> Photo | None:
        """The photograph whose result is the eye's."""
        index = self.deciding_index
        return None if index is None else self.images[index]

    @property
    def gradable(self) -> bool:
        """At least one photograph passed the quality gate and was graded."""
        return self.deciding is not None

    @property
    def quality_score(self) -> float:
        """The best quality score among the photographs."""
        return max(float(image.quality.score) for image in self.images)

    @property
    def quality_reasons(self) -> list[str]:
        """Why the eye is ungradable (every photograph's reasons, once each); [] when gradable."""
        if self.gradable:
            return []
        reasons: list[str] = []
        for image in self.images:
            reasons.extend(r for r in image.quality.reasons if r not in reasons)
        return reasons

    @property
    def vision_threatening(self) -> bool | None:
        """Grade >= 3 in the deciding photograph; None when the eye is ungradable."""
        deciding = self.deciding
        if deciding is None:
            return None
        return self.finding().vision_threatening

    @property
    def action(self) -> clinical.Action:
        """The eye's next step."""
        deciding = self.deciding
        return "retake_or_refer_in_person" if deciding is None else deciding.action

    @property
    def recommendation(self) -> str:
        """The eye's plain-language advice."""
        deciding = self.deciding
        if deciding is None:
            return clinical.ungradable_recommendation(self.quality_reasons)
        return deciding.recommendation

    def finding(self) -> clinical.EyeFinding:
        """What the patient-level decision needs from this eye."""
        deciding = self.deciding
        if deciding is None:
            return clinical.EyeFinding(self.eye, False, None, None)
        return clinical.EyeFinding(self.eye, True, deciding.grade, deciding.referable)


def split_by_eye(outcomes: Sequence[Photo], counts: dict[Eye, int]) -> dict[Eye, EyeExam | None]:
    """Cut a flat list of graded photographs (left ones first) back into eyes."""
    exams: dict[Eye, EyeExam | None] = {}
    start = 0
    for eye in ("left", "right"):
        count = counts.get(eye, 0)
        exams[eye] = EyeExam(eye, outcomes[start : start + count]) if count else None
        start += count
    return exams
