"""Requirements as pytest Items: `-k`, `--lf`, `-x`, `--junitxml` and xdist treat them as tests."""

from __future__ import annotations

import re
import warnings

import pytest

from .errors import ErranWarning

__all__ = ["ErranWarning", "GateFile", "RequirementItem"]


class RequirementFailed(Exception):
    def __init__(self, verdict):
        super().__init__(verdict.message)
        self.verdict = verdict


class WarningMadeAnError(Exception):
    """The run's warning filters (`-W error`, `filterwarnings = error`) turned a requirement's
    ErranWarning into an error: the requirement fails, with its message on one line."""

    def __init__(self, verdict):
        super().__init__(verdict.message)
        self.verdict = verdict


class GateFile(pytest.File):
    """The config file as a test file: its [[require]] entries are its tests. Collected like any
    file when pytest is pointed at it, and added to every other collection by the plugin."""

    def __init__(self, *, state, **kwargs):
        super().__init__(**kwargs)
        self.state = state

    def collect(self):
        for requirement in self.state.settings.requirements:
            yield RequirementItem.from_parent(self, name=requirement.id, requirement=requirement,
                                              state=self.state)


class RequirementItem(pytest.Item):
    def __init__(self, *, requirement, state, **kwargs):
        super().__init__(**kwargs)
        self.requirement = requirement
        self.state = state
        self.add_marker(pytest.mark.erran)

    def runtest(self) -> None:
        verdict = self.state.verdict(self.requirement.id)
        from .report.junit import requirement_properties

        # --junitxml writes these as the test case's <properties>, whatever the outcome
        result = self.state.require_evaluation().bucket(self.requirement.bucket)
        self.user_properties.extend(requirement_properties(verdict, result))
        if verdict.skipped:
            pytest.skip(verdict.message)
        if not verdict.passed:
            raise RequirementFailed(verdict)
        if verdict.warning:
            # Pointed at the config's line, so the warnings summary shows the requirement, not
            # this file. Under an "error" filter warn_explicit raises the warning itself.
            try:
                warnings.warn_explicit(ErranWarning(verdict.headline), ErranWarning, str(self.path),
                                       _line_of(self.path, self.requirement.bucket))
            except ErranWarning:
                raise WarningMadeAnError(verdict) from None

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RequirementFailed):
            verdict = excinfo.value.verdict
            return f"{verdict.outcome}: {verdict.message}"
        if isinstance(excinfo.value, WarningMadeAnError):
            verdict = excinfo.value.verdict
            return (f"{verdict.outcome}, an ErranWarning that this run's warning filters make an error "
                    f"('ignore::pytest_erran.ErranWarning' in filterwarnings lets it pass): {verdict.message}")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        # A domain that is not a dotted Python name: pytest would turn its dots into "::".
        return self.path, None, f"{DOMAIN}{self.requirement.id}"


DOMAIN = "erran: "  # reports of requirement items carry location[2] == DOMAIN + requirement id


def requirement_of(report) -> str | None:
    """The requirement id a test report is about, or None for any other test. Works on the
    xdist controller too, which never collects: the location travels with the report."""
    location = getattr(report, "location", None)
    domain = location[2] if location else None
    return domain[len(DOMAIN):] if isinstance(domain, str) and domain.startswith(DOMAIN) else None


def _line_of(path, bucket: str) -> int:
    """The config line `bucket = "<bucket>"` (its first), for the warnings summary; 0 if none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0
    pattern = re.compile(rf"\s*bucket\s*=\s*[\"']{re.escape(bucket)}[\"']")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)), 0)
