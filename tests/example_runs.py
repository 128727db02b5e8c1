"""The committed examples run as a user runs them: a copy of the folder (so that nothing the
runs write touches the committed baseline), then real pytest processes in it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "example_project"


def copy_example(source: Path, destination: Path, *skip: str) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", *skip))
    return destination


class Run:
    """`pytest ARGS` in `folder`, with its JSON report beside the folder as NAME.json."""

    def __init__(self, folder: Path, name: str, *args: str):
        report = folder.parent / f"{name}.json"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
               f"--erran-report={report}", *args]
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)
        self.status, self.out = done.returncode, done.stdout + done.stderr
        self.report = json.loads(report.read_text()) if report.exists() else None
        self.buckets = {b["name"]: b for b in self.report["buckets"]} if self.report else {}

    def failed(self) -> list[str]:
        return [r["id"] for r in self.report["requirements"] if r["passed"] is False]

    def recall(self, bucket: str) -> float:
        return self.buckets[bucket]["recall"]
