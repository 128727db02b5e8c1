"""The classification example (example_project/surfaces/) still runs as its README says: two
requirements fail by design (dents under low light), the rest hold, and its committed baseline is
its own model's results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

SURFACES = Path(__file__).resolve().parents[1] / "example_project" / "surfaces"


def test_the_surfaces_example_fails_dent_and_low_light_against_its_own_baseline(tmp_path):
    copy = tmp_path / "surfaces"
    shutil.copytree(SURFACES, copy, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--erran-model=model.onnx", f"--erran-report={report}"],
                          cwd=copy, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    found = json.loads(report.read_text())
    failed = sorted(r["id"] for r in found["requirements"] if r["passed"] is False)
    assert failed == ["recall(dent)>=0.85", "recall(low_light)>=0.90"]
    assert [b["delta"] for b in found["buckets"]] == [0.0] * len(found["buckets"])
    assert json.loads((SURFACES / ".erran" / "baseline.json").read_text())["model"]["sha256"] == \
        found["model"]["sha256"]
