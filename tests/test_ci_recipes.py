"""docs/ci.md: every YAML recipe parses, and every pytest command in it (YAML or shell) uses only
options that `pytest --help` lists; the comment marker, link label and cache path are the ones
the plugin writes."""

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_erran.report.markdown import LINK_LABEL, MARKER

yaml = pytest.importorskip("yaml")

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def help_text(tmp_path_factory):
    where = tmp_path_factory.mktemp("help")
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=where, capture_output=True,
                          text=True, check=True)
    return done.stdout


def commands(node) -> list[str]:
    """Every string under a `run`, `script` or `entry` key, anywhere in a parsed recipe."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script", "entry"):
                found += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
            else:
                found += commands(value)
    elif isinstance(node, list):
        for value in node:
            found += commands(value)
    return found


def pytest_options(command: str) -> list[list[str]]:
    """The options of each pytest invocation in a (possibly multi-line) shell command."""
    joined = command.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        words: list[str] = []
        for word in [*lexer, ";"]:
            if word in (";", "&&", "||", "|", "&"):  # one simple command ends
                if words and words[0] == "pytest":
                    out.append([w.split("=")[0] for w in words[1:] if w.startswith("-")])
                words = []
            else:
                words.append(word)
    return out


def test_every_recipe_parses_and_runs_only_documented_options(help_text):
    recipes = [yaml.safe_load(text) for text in blocks("yaml")]
    assert len(recipes) == 4  # GitHub gate, GitHub baseline, GitLab, pre-commit
    shell = [command for recipe in recipes for command in commands(recipe)] + blocks("sh")
    invocations = [options for command in shell for options in pytest_options(command)]
    assert len(invocations) >= 6
    for options in invocations:
        for option in options:
            assert re.search(rf"(^|[\s,]){re.escape(option)}([\s=,]|$)", help_text, re.M), option
    used = {option for options in invocations for option in options}
    assert {"--erran-model", "--erran-html", "--erran-markdown", "--erran-report", "--junit-xml",
            "--erran-save-baseline"} <= used


def test_the_github_recipe_speaks_the_plugins_markers():
    gate = yaml.safe_load(blocks("yaml")[0])
    steps = gate["jobs"]["gate"]["steps"]
    script = next(s for s in steps if s.get("uses", "").startswith("actions/github-script"))["with"]["script"]
    assert f'"{MARKER}"' in script
    sed = next(s["run"] for s in steps if s.get("run", "").startswith("sed "))
    assert sed.startswith('sed -i "s|^\\[erran-html\\]: .*|')
    assert f"[{LINK_LABEL}]:" in sed.replace("\\[", "[")
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))["with"]["path"]
    assert fnmatch.fnmatch(".pytest_cache/d/erran-predictions", cache)  # session.py's cache dir
    triggers = gate[True] if True in gate else gate["on"]  # YAML 1.1 reads `on` as true
    assert "pull_request" in triggers
    gitlab = yaml.safe_load(blocks("yaml")[2])["erran"]
    assert gitlab["artifacts"]["reports"]["junit"] == "erran-junit.xml"
    assert gitlab["artifacts"]["expose_as"] and gitlab["artifacts"]["paths"] == ["erran.html"]
