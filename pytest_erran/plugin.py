"""pytest glue: options, the session state in config.stash, requirement items, fixtures, summary.

Everything that evaluates lives in plain modules below; this file only wires them to pytest.
It imports nothing heavy: an installed but inactive plugin must cost next to nothing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pytest

from .locate import config_candidate

if TYPE_CHECKING:
    from .session import ErranState

STATE = pytest.StashKey["ErranState"]()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# Every option has its config key (the same name without the prefix); the config is the default.
OPTIONS = (
    ("--erran-model", {"metavar": "PATH", "help": "ONNX model to evaluate (default: `model` in the erran config)."}),
    ("--erran-data", {"metavar": "PATH", "help": "dev set: manifest (.csv/.jsonl/.parquet), ImageFolder or "
                                                 "COCO JSON (default: `data` in the config)."}),
    ("--erran-config", {"metavar": "PATH", "help": "config file (default: erran.toml in the rootdir, else "
                                                   "[tool.erran] in pyproject.toml)."}),
    ("--erran-report", {"metavar": "PATH", "help": "write the JSON report here (default: `report` in the "
                                                   "config, else none)."}),
    ("--erran-predictions", {"metavar": "PATH", "help": "evaluate a predictions file instead of running a "
                                                        "model (default: `predictions` in the config)."}),
    ("--erran-baseline", {"metavar": "PATH", "help": "baseline to compare against and save to (default: "
                                                     "`baseline` in the config, else .erran/baseline.json "
                                                     "in the rootdir)."}),
    ("--erran-html", {"metavar": "PATH", "help": "write the HTML gallery of misses here, one self-contained "
                                                 "file (default: `html` in the config, else none)."}),
    ("--erran-markdown", {"metavar": "PATH", "help": "write the summary as Markdown for a pull-request "
                                                     "comment, and append it to $GITHUB_STEP_SUMMARY when set "
                                                     "(default: `markdown` in the config, else none)."}),
    ("--erran-save-baseline", {"action": "store_true", "default": False,
                               "help": "save this run's results as the baseline (default: off)."}),
    ("--erran-batch-size", {"metavar": "N", "type": _positive_int,
                            "help": "images per inference batch (default: `batch_size` in the config, else 16)."}),
    ("--erran-threads", {"metavar": "N", "type": _positive_int,
                         "help": "image decoding threads (default: `threads` in the config, else one per core)."}),
    ("--erran-no-cache", {"action": "store_true", "default": False,
                          "help": "no prediction or input cache: decode and predict every image "
                                  "(default: `cache` in the config, else cached)."}),
    ("--erran-analyze", {"action": "store_true", "default": False,
                         "help": "add the error analysis to the summary and the JSON report: buckets of "
                                 "misses ranked, with the experiment to try (default: `analyze` in the "
                                 "config, else off)."}),
    ("--erran-misses", {"metavar": "PATH", "help": "write a review sheet (CSV) of up to `review` misses for "
                                                   "a person to give causes (default: `misses` in the "
                                                   "config, else none)."}),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("erran", "pytest-erran: per-bucket recall gates for vision models")
    for flag, options in OPTIONS:
        group.addoption(flag, **{"default": None, **options})


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "erran: a pytest-erran requirement on a bucket")
    if not _may_be_active(config):
        return
    from .session import ErranState

    state = ErranState.from_pytest(config)
    if state is None:
        return
    config.stash[STATE] = state
    config.pluginmanager.register(ActivePlugin(state), "erran-active")
    if config.pluginmanager.has_plugin("html"):  # pytest-html: its hooks exist only with it
        from .pytest_html_glue import PytestHtmlHooks

        config.pluginmanager.register(PytestHtmlHooks(state), "erran-pytest-html")
    if config.pluginmanager.has_plugin("xdist") and not state.is_worker:
        from .distributed import XdistController

        config.pluginmanager.register(XdistController(state), "erran-xdist")


def _may_be_active(config: pytest.Config) -> bool:
    """A cheap first look, so that projects without erran pay two stat calls and no imports."""
    option = config.option
    if option.erran_model or option.erran_predictions or option.erran_config:
        return True
    return config_candidate(config.rootpath) is not None


class ActivePlugin:
    """Hooks that only exist when a model or predictions are configured."""

    def __init__(self, state: "ErranState"):
        self.state = state

    def pytest_report_header(self, config: pytest.Config) -> str:
        return self.state.header()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Under xdist the controller runs the model here, before its workers start (xdist's
        # hook is trylast), and the workers then find the predictions in the cache.
        distributing = session.config.pluginmanager.has_plugin("dsession")
        if self._evaluates(session) and (distributing or self.state.is_worker):
            self.state.evaluate()

    @pytest.hookimpl(wrapper=True)
    def pytest_collection(self, session: pytest.Session):
        # Otherwise here: after the header, and inside the session's timing.
        if self._evaluates(session) and self.state.evaluation is None:
            self.state.evaluate()
        return (yield)

    @staticmethod
    def _evaluates(session: pytest.Session) -> bool:
        return not session.config.option.collectonly

    def pytest_collect_file(self, file_path, parent):
        if file_path == self.state.gate_path:
            from .items import GateFile

            return GateFile.from_parent(parent, path=file_path, state=self.state)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list) -> None:
        # The requirements run whatever paths pytest was given: a gate that silently does not
        # run is the worst failure this tool can have. tryfirst: -k and --lf then filter them.
        from .items import GateFile, RequirementItem

        if not any(isinstance(item, RequirementItem) for item in items):
            gate = GateFile.from_parent(session, path=self.state.gate_path, state=self.state)
            items.extend(session.genitems(gate))

    def pytest_runtest_logreport(self, report) -> None:
        self.state.record(report)  # the summary and report then show only what ran

    def pytest_unconfigure(self) -> None:
        self.state.finish()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.state.is_worker or self.state.evaluation is None:
            return
        problem = self.state.write_outputs()
        if problem:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.state.is_worker:
            return
        lines = self.state.summary_lines()
        if not lines:
            return
        terminalreporter.write_sep("=", "erran")
        for text, markup in lines:
            terminalreporter.write_line(text, **markup)


def _state(request: pytest.FixtureRequest) -> "ErranState":
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.skip("pytest-erran is inactive: give --erran-model (or `model` in erran.toml)")
    return state


@pytest.fixture(scope="session")
def erran_results(request: pytest.FixtureRequest):
    """The evaluation: `erran_results.bucket("scratch").recall`, `.positives`, `.hits`, `.missed`."""
    return _state(request).require_evaluation()


@pytest.fixture(scope="session")
def erran_dataset(request: pytest.FixtureRequest):
    """The dev set: `.images` (one row per image) and `.units` (one row per unit) tables."""
    return _state(request).require_evaluation().dataset


@pytest.fixture(scope="session")
def erran_model(request: pytest.FixtureRequest):
    """The ONNX model (`.session` is the onnxruntime session), or a skip with a predictions file."""
    return _state(request).model()
