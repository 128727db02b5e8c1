"""Requirements as pytest Items: `-k`, `--lf`, `-x`, `--junitxml` and xdist treat them as tests."""

from __future__ import annotations

import warnings

import pytest


class ErranWarning(UserWarning):
    """A requirement that passed but should be looked at: inconclusive drop, too-small bucket."""


class RequirementFailed(Exception):
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
            warnings.warn(ErranWarning(verdict.headline), stacklevel=1)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RequirementFailed):
            verdict = excinfo.value.verdict
            return f"{verdict.outcome}: {verdict.message}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        # A domain that is not a dotted Python name: pytest would turn its dots into "::".
        return self.path, None, f"erran: {self.requirement.id}"
