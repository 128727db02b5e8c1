"""The progress line: a plain callback in the pipeline, a rewritten line on a terminal, at most
one line every ten seconds in a verbose CI log, nothing otherwise."""

from builders import CLASSES
from conftest import rows_with_misses
from pytest_erran.progress import LOG_EVERY_S, ProgressLine
import pytest_erran


class Reporter:
    def __init__(self):
        self.calls = []

    def rewrite(self, line, **markup):
        self.calls.append(("rewrite", line))

    def write_line(self, line, **markup):
        self.calls.append(("line", line))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_pipeline_reports_images_done_batch_by_batch(project):
    project.model()
    project.data(rows_with_misses(n=21))
    seen = []
    pytest_erran.evaluate({"model": str(project.path / "model.onnx"), "data": str(project.path / "dev.csv"),
                           "classes": CLASSES, "negative": "ok", "batch_size": 8},
                          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 21), (8, 21), (16, 21), (21, 21)]


def test_an_interactive_line_is_rewritten_then_erased():
    reporter, clock = Reporter(), Clock()
    line = ProgressLine(reporter, interactive=True, verbose=0, clock=clock)
    line(0, 400)
    clock.now += 2
    line(100, 400)  # 50 img/s, 300 left: 6 s
    clock.now += 0.01
    line(110, 400)  # too soon to redraw
    clock.now += 6
    line(400, 400)  # the last one is always drawn
    line.close()
    assert reporter.calls[:2] == [("rewrite", "erran: predicting 100/400 images, 50 img/s, 6 s left"),
                                  ("rewrite", "erran: predicting 400/400 images, 50 img/s, 0 s left")]
    assert reporter.calls[2][0] == "rewrite" and reporter.calls[2][1] == "" and len(reporter.calls) == 4


def test_a_verbose_log_gets_one_line_every_ten_seconds_at_most():
    reporter, clock = Reporter(), Clock()
    line = ProgressLine(reporter, interactive=False, verbose=1, clock=clock)
    line(0, 10_000)
    for done in range(100, 10_001, 100):  # one batch every second: 100 s in all
        clock.now += 1
        line(done, 10_000)
    line.close()
    assert [kind for kind, _ in reporter.calls] == ["line"] * int(100 / LOG_EVERY_S)
    assert reporter.calls[0][1] == "erran: predicting 1000/10000 images, 100 img/s, 1 min 30 s left"


def test_a_ci_log_without_verbose_gets_no_progress(project):
    project.model()
    project.data(rows_with_misses())
    project.config("""
    [[require]]
    bucket = "dent"
    recall = 0.5
    """)
    for args in ((), ("-v",)):  # -v: a run this short has no ten seconds to report
        result = project.run(*args)
        assert result.ret == 0 and "erran: predicting" not in result.stdout.str()
