"""The small and isolated experiment to try for each cause of error: a table shipped as data
(suggestions.toml), extended or overridden per project by the config's [suggestions]."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

from ..vocabulary import AUTO_PREFIX

# The cause each automatic bucket stands for (its key in the table).
AUTO_CAUSES = {"dark": "dark", "bright": "bright", "low_contrast": "low_contrast", "blurry": "blurry",
               "edge": "edge", "small": "small", "faint": "faint"}
# The cause a drift of each property points to.
DRIFT_CAUSES = {"brightness": "lighting", "contrast": "low_contrast", "blur": "blurry",
                "object_brightness": "lighting", "object_contrast": "faint", "area_fraction": "small",
                "edge_distance": "edge"}


@lru_cache(maxsize=1)
def shipped() -> dict[str, dict]:
    """The package's table: key -> {"cause": text, "experiments": [text, ...]}."""
    text = resources.files("pytest_erran.analysis").joinpath("suggestions.toml").read_text("utf-8")
    return tomllib.loads(text)


class Suggestions:
    """The shipped table with the project's entries on top. A project key is either a cause of
    the table (its experiments replace the shipped ones) or a bucket name (`low_light`,
    `tag:glare`, `dent & tag:glare`, `auto:edge`) whose experiments come first for that bucket."""

    def __init__(self, project: dict[str, list[str]]):
        self.project = dict(project)
        self.table = shipped()

    def experiments(self, key: str) -> list[str]:
        if key in self.project:
            return list(self.project[key])
        return list(self.table.get(key, {}).get("experiments", []))

    def cause(self, key: str) -> str:
        return self.table.get(key, {}).get("cause", key)

    def for_bucket(self, name: str, part: str | None, cause: str | None) -> tuple[str, list[str]]:
        """(key used, experiments) for a ranked bucket: its own name in [suggestions], then the
        name of the bucket a class was crossed with, then its cause, then 'review'."""
        for key in (name, part):
            if key is not None and key in self.project:
                return key, list(self.project[key])
        if cause is not None:
            found = self.experiments(cause)
            if found:
                return cause, found
        return "review", self.experiments("review")


def auto_cause(bucket: str | None) -> str | None:
    """'auto:edge' -> 'edge'; None for a bucket that is not automatic."""
    if bucket is None or not bucket.startswith(AUTO_PREFIX):
        return None
    return AUTO_CAUSES.get(bucket[len(AUTO_PREFIX):])
