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

from dataclasses import dataclass
from typing import Literal

from gateway import clinical
from gateway.grading import EyeOutcome

Eye = Literal["left", "right"]


@dataclass(frozen=True)
class EyeExam:
    """The photographs of one eye, in the order sent, and the one that decides the eye."""

    eye: Eye
    images: list[EyeOutcome]

    @property
    def deciding_index(self) -> int | None:
        """Index in ``images`` of the worst gradable photograph (None: none is gradable)."""
        ranked = [
            (bool(image.referable), image.grade, image.referable_probability or 0.0, -index)
            for index, image in enumerate(self.images)
            if image.grade is not None
        ]
        return -max(ranked)[3] if ranked else None

    @property
    def deciding(self) -> EyeOutcome | None:
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
        return max(float(image.preprocessed.quality.score) for image in self.images)

    @property
    def quality_reasons(self) -> list[str]:
        """Why the eye is ungradable (every photograph's reasons, once each); [] when gradable."""
        if self.gradable:
            return []
        reasons: list[str] = []
        for image in self.images:
            reasons.extend(r for r in image.preprocessed.quality.reasons if r not in reasons)
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


def split_by_eye(outcomes: list[EyeOutcome], counts: dict[Eye, int]) -> dict[Eye, EyeExam | None]:
    """Cut a flat list of graded photographs (left ones first) back into eyes."""
    exams: dict[Eye, EyeExam | None] = {}
    start = 0
    for eye in ("left", "right"):
        count = counts.get(eye, 0)
        exams[eye] = EyeExam(eye, outcomes[start : start + count]) if count else None
        start += count
    return exams
