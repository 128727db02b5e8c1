"""The classification example (example_project/surfaces/) still runs as its README says: two
requirements fail by design (dents under low light), the rest hold, and its committed baseline is
its own model's results."""

from __future__ import annotations

import json

from example_runs import EXAMPLES, Run, copy_example

SURFACES = EXAMPLES / "surfaces"


def test_the_surfaces_example_fails_dent_and_low_light_against_its_own_baseline(tmp_path):
    run = Run(copy_example(SURFACES, tmp_path / "surfaces"), "report", "--erran-model=model.onnx")
    assert run.status == 1, run.out
    assert sorted(run.failed()) == ["recall(dent)>=0.85", "recall(low_light)>=0.90"]
    assert [b["delta"] for b in run.report["buckets"]] == [0.0] * len(run.report["buckets"])
    assert json.loads((SURFACES / ".erran" / "baseline.json").read_text())["model"]["sha256"] == \
        run.report["model"]["sha256"]
