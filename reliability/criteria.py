"""Pass/fail criteria of a reliability run, printed beside the figures they were judged on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One criterion: its name, whether it held, and the measured figure behind the verdict."""

    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    """Figures and checks of one scenario."""

    scenario: str
    figures: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def figure(self, line: str) -> None:
        """Record a measured figure."""
        self.figures.append(line)

    def check(self, name: str, passed: bool, detail: str) -> None:
        """Record a criterion and its verdict."""
        self.checks.append(Check(name, bool(passed), detail))

    @property
    def passed(self) -> bool:
        """Every criterion held."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The criteria that did not hold."""
        return [check for check in self.checks if not check.passed]

    def render(self) -> str:
        """The report as printed text."""
        lines = [f"== {self.scenario} ==", *self.figures]
        lines += [f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in self.checks]
        lines.append(f"{self.scenario}: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)
