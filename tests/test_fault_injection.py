"""Runs killed with SIGKILL while predicting and while writing the cache, the report and the
baseline, and runs racing each other on one project: a file is never half-written where a reader
looks, every re-run gives the clean run's results, and nothing a killed run left is read.

The kill points are set by the project's own conftest.py (a trusted file, as a project's
conftest is): its output adapter can kill the run on its n-th batch, and it can wrap the
functions that write files so that the process dies half-way through the write."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import rows_with_misses

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

KILLING_CONFTEST = """
import os, signal, time

import numpy as np

point, _, count = os.environ.get("ERRAN_KILL", "").partition(":")
calls = {"adapter": 0, "fsync": 0}


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def pytest_erran_output_adapters(task):
    def slow(outputs, options):  # one image per batch, a little work each: a window to be killed in
        calls["adapter"] += 1
        if point == "predict" and calls["adapter"] == int(count):
            die()
        with open("runs.txt", "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.005)
        return outputs["scores"]
    return {"slow": slow}


if point == "cache":  # the cache entry is half on disk when the process dies
    savez = np.savez

    def half_savez(file, *args, **kwargs):  # a path (prediction cache) or an open file (input cache)
        savez(file, *args, **kwargs)
        if hasattr(file, "fileno"):
            file.flush()
            os.ftruncate(file.fileno(), os.fstat(file.fileno()).st_size // 2)
        else:
            with open(file, "r+b") as f:
                f.truncate(os.path.getsize(file) // 2)
        die()

    np.savez = half_savez

if point == "write":  # the n-th report or baseline write is half on disk when the process dies
    fsync = os.fsync

    def half_fsync(fd):
        calls["fsync"] += 1
        if calls["fsync"] == int(count):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            die()
        fsync(fd)

    os.fsync = half_fsync
"""

CONFIG = """
model = "model.onnx"
data = "dev.csv"
classes = ["ok", "scratch", "dent"]
negative = "ok"
output = "slow"
batch_size = 1
[[require]]
bucket = "scratch"
recall = 0.5
[[require]]
bucket = "all"
max_drop = 0.05
"""
ARGS = ("-p", "no:randomly", "--erran-report=report.json", "--erran-save-baseline")


@pytest.fixture
def killable(project):
    project.model()
    project.data(rows_with_misses(n=40, missed=(1, 4, 5, 10, 17, 22)))
    project.write_config(CONFIG)
    project.pytester.makeconftest(KILLING_CONFTEST)
    return project


def without_time(document):
    """A report or baseline without the times it holds (its own, and its baseline's)."""
    document = {key: value for key, value in document.items() if key != "created"}
    if isinstance(document.get("baseline"), dict):
        document["baseline"] = without_time(document["baseline"])
    return document


def reference(project):
    """A clean run's report and baseline: the second of two clean runs, so that it compares
    against a baseline as every later run does. The baseline stays; the rest is removed."""
    for _ in range(2):
        result = project.run(*ARGS)
        assert result.ret == 0, result.stdout.str()
    documents = [without_time(json.loads(p.read_text()))
                 for p in (project.path / "report.json", project.path / ".erran" / "baseline.json")]
    assert documents[0]["baseline"]["shared"] > 0
    clean(project)
    return documents


def clean(project):
    """Everything but the baseline: the killed run starts from nothing of its own."""
    shutil.rmtree(project.path / ".pytest_cache", ignore_errors=True)
    for path in (project.path / "report.json", project.path / "runs.txt"):
        path.unlink(missing_ok=True)


def popen(project, kill=""):
    env = {**os.environ, "ERRAN_KILL": kill}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.Popen([sys.executable, "-m", "pytest", *ARGS], cwd=project.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def readable_state(project, expected_report, expected_baseline):
    """What a reader finds after a killed run: no half-written report or baseline; each is
    absent, this project's complete file, or (the report) an error report saying the run did not
    finish. A left-over temp file is never under the real name."""
    report = project.path / "report.json"
    if report.exists():
        document = without_time(json.loads(report.read_text()))  # raises on a half-written file
        assert document == expected_report or (document["evaluated"] is False and "error" in document)
    baseline = project.path / ".erran" / "baseline.json"
    if baseline.exists():
        assert without_time(json.loads(baseline.read_text())) == expected_baseline


def rerun_gives_the_clean_results(project, expected_report, expected_baseline):
    result = project.run(*ARGS)
    assert result.ret == 0, result.stdout.str()
    assert without_time(json.loads((project.path / "report.json").read_text())) == expected_report
    assert without_time(json.loads((project.path / ".erran" / "baseline.json").read_text())) == expected_baseline
    assert not list(project.path.rglob("*.tmp")), "a killed run's temp file was left behind"
    entries = list(project.path.joinpath(".pytest_cache", "d", "erran-predictions").glob("*.npz"))
    assert [e.name for e in entries if e.name.startswith(".")] == []
    for entry in entries:
        with np.load(entry) as stored:
            assert set(stored.files) >= {"index", "_key"}
    return result


# write 1 is the "not finished" report a run writes as it starts, write 2 the baseline, write 3
# the final report: all three go through the same write_atomic, so killing the baseline's (the
# one whose old content must survive) stands for them
KILL_POINTS = ["predict:7", "cache", "write:2"]


def test_runs_killed_at_named_points(killable):
    expected_report, expected_baseline = reference(killable)
    for kill in KILL_POINTS:
        clean(killable)
        process = popen(killable, kill)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == -signal.SIGKILL, (kill, out)
        readable_state(killable, expected_report, expected_baseline)
        if kill == "write:2":  # killed before its final report: the report says it did not finish
            assert json.loads((killable.path / "report.json").read_text())["evaluated"] is False
        rerun_gives_the_clean_results(killable, expected_report, expected_baseline)


def test_runs_killed_at_random_moments(killable):
    expected_report, expected_baseline = reference(killable)
    chooser = random.Random()
    for _ in range(2):
        clean(killable)  # so that the run predicts again, and may be killed doing it
        delay = chooser.uniform(0.3, 2.5)
        process = popen(killable)
        time.sleep(delay)
        process.kill()
        process.communicate(timeout=120)
        readable_state(killable, expected_report, expected_baseline)
        result = rerun_gives_the_clean_results(killable, expected_report, expected_baseline)
        assert "Traceback" not in result.stdout.str(), f"after a kill at {delay:.2f} s"


def test_two_concurrent_runs_share_one_prediction_and_corrupt_nothing(killable):
    expected_report, expected_baseline = reference(killable)
    first, second = popen(killable), popen(killable)
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    assert first.returncode == second.returncode == 0, outs
    readable_state(killable, expected_report, expected_baseline)
    assert json.loads((killable.path / "report.json").read_text())["evaluated"] is True
    runs = (killable.path / "runs.txt").read_text().split()
    assert len(runs) == 40 and len(set(runs)) == 1, "the model ran in both processes"
    result = rerun_gives_the_clean_results(killable, expected_report, expected_baseline)
    assert "predictions from cache" in result.stdout.str()
