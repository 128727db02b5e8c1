"""The plugin's session state: settings from pytest options, the evaluation, the files it writes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

from .config import build_settings, find_config
from .errors import ErranError

OPTION_PATHS = {"model": "erran_model", "data": "erran_data", "predictions": "erran_predictions",
                "report": "erran_report", "baseline": "erran_baseline", "html": "erran_html",
                "markdown": "erran_markdown", "misses": "erran_misses"}
# workerinput key: the controller's cache folder, so that xdist workers read the predictions the
# controller made even without a usable .pytest_cache (-p no:cacheprovider, read-only).
SHARED_CACHE = "erran_cache_dir"


class ErranState:
    def __init__(self, config: pytest.Config, settings):
        self.config = config
        self.settings = settings
        self.evaluation = None
        self.saved_baseline: Path | None = None
        self.report_path: Path | None = None
        self.written: list[tuple[str, Path]] = []  # (what, where) of the reports beside the JSON
        self.review_path: Path | None = None
        self.problems: list[str] = []
        self.notes: list[str] = []  # one-line warnings for the summary (a cache skipped, ...)
        self.outcomes: dict[str, str] = {}  # requirement id -> pytest outcome of its item
        self.cache_dir: Path | None = None
        self._temp_cache: Path | None = None

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> "ErranState | None":
        """The state when the plugin is active (a model or predictions are given), else None."""
        option = config.option
        overrides = {key: _resolve(config, getattr(option, name)) for key, name in OPTION_PATHS.items()}
        overrides["batch_size"] = option.erran_batch_size
        overrides["threads"] = option.erran_threads
        overrides["cache"] = False if option.erran_no_cache else None
        config_path, table = None, {}
        overrides["analyze"] = True if option.erran_analyze else None
        try:
            config_path, table = find_config(config.rootpath, _resolve(config, option.erran_config))
            if config_path is None and not (overrides["model"] or overrides["predictions"]):
                return None
            # A config that exists is always validated: `modle = ...` must be an error, not a
            # config without a model that silently turns the gate off.
            settings = build_settings(config.rootpath, config_path, table, overrides)
        except ErranError as e:
            if not hasattr(config, "workerinput"):
                _replace_report(_report_path(overrides["report"], config_path, table), str(e))
            raise pytest.UsageError(f"erran: {e}") from None
        return cls(config, settings) if settings.active else None

    @property
    def gate_path(self) -> Path:
        """The file the requirement items belong to: the config, else a name in the rootdir."""
        return self.settings.config_path or self.config.rootpath / "erran"

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def header(self) -> str:
        from .report.terminal import evaluated, shown_path

        s = self.settings
        config = shown_path(s.config_path) if s.config_path else "the command line"
        return (f"erran: {evaluated(s)}, data {shown_path(s.data) if s.data else None}, "
                f"{len(s.requirements)} requirement(s) from {config}")

    def evaluate(self) -> None:
        from .pipeline import evaluate

        from .progress import ProgressLine

        if not self.is_worker:  # until this run's report replaces it, the old one must not stand
            _replace_report(self.settings.report, "the run started but has not finished evaluating "
                            "(or was stopped before it did)")
        self.cache_dir = self._cache_dir()
        progress = None if self.is_worker else ProgressLine.for_config(self.config)
        try:
            with _library_warnings_stay_warnings():
                self.evaluation = evaluate(self.settings, self.cache_dir, adapters=self._adapters(),
                                           unit_columns=self._unit_columns(), progress=progress)
        except ErranError as e:
            if not self.is_worker:
                _replace_report(self.settings.report, str(e))
            raise pytest.UsageError(f"erran: {e}") from None
        except Exception as e:
            if not self.is_worker:
                _replace_report(self.settings.report, f"pytest-erran failed: {type(e).__name__}: {e}")
            raise
        finally:
            if progress is not None:
                progress.close()
        for note in self.evaluation.notes:
            self._note(note)

    def _cache_dir(self) -> Path | None:
        """Where predictions are cached: the controller's folder on an xdist worker, else
        .pytest_cache. One that cannot be written is skipped with one warning line; a
        controller with workers then shares a temporary folder, so the model still runs once."""
        shared = getattr(self.config, "workerinput", {}).get(SHARED_CACHE)
        if shared:
            return Path(shared)
        if not self.settings.cache:  # --erran-no-cache
            return self._shared_temp_cache()
        cache = getattr(self.config, "cache", None)
        if cache is not None:
            try:
                directory = cache.mkdir("erran-predictions")
                _probe(directory)
                return directory
            except OSError as e:
                from .inference.cache import cache_warning

                self._note(cache_warning(e.filename or ".pytest_cache", e.strerror or type(e).__name__))
        return self._shared_temp_cache()

    def _shared_temp_cache(self) -> Path | None:
        """Without a cache, a controller with xdist workers still shares its predictions through
        a temporary folder, removed at the end, so that the model runs once."""
        if self.config.pluginmanager.has_plugin("dsession"):
            self._temp_cache = Path(tempfile.mkdtemp(prefix="erran-cache-"))
            return self._temp_cache
        return None

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def finish(self) -> None:
        if self._temp_cache is not None:
            shutil.rmtree(self._temp_cache, ignore_errors=True)
            self._temp_cache = None

    def record(self, report) -> None:
        """The pytest outcome of a requirement's item (on the xdist controller too)."""
        from .items import requirement_of

        requirement = requirement_of(report)
        if requirement is not None and (report.when == "call" or report.outcome != "passed"):
            if report.when != "teardown":
                self.outcomes[requirement] = report.outcome

    def _adapters(self) -> dict:
        """The output adapters conftest.py files register (pytest_erran_output_adapters)."""
        adapters: dict = {}
        hook = self.config.hook.pytest_erran_output_adapters
        for impl in hook.get_hookimpls():
            found = impl.function(**_arguments(impl, task=str(self.settings.task))) or {}
            for name, adapter in dict(found).items():
                if name in adapters:
                    raise ErranError(f"pytest_erran_output_adapters in {impl.plugin_name}: the "
                                     f"adapter '{name}' is registered twice; rename one")
                adapters[name] = adapter
        return adapters

    def _unit_columns(self) -> list:
        """One provider per pytest_erran_unit_columns implementation, named after its plugin."""
        providers = []
        for impl in self.config.hook.pytest_erran_unit_columns.get_hookimpls():
            def provider(units, images, settings, impl=impl):
                return impl.function(**_arguments(impl, units=units, images=images, settings=settings))

            provider.__qualname__ = f"in {impl.plugin_name}"
            providers.append(provider)
        return providers

    def require_evaluation(self):
        if self.evaluation is None:
            self.evaluate()
        return self.evaluation

    def verdict(self, requirement_id: str):
        for verdict in self.require_evaluation().verdicts:
            if verdict.id == requirement_id:
                return verdict
        raise LookupError(requirement_id)  # items come from the same settings: cannot happen

    def model(self):
        if self.settings.model is None:
            pytest.skip("pytest-erran evaluates a predictions file: there is no model")
        from .inference.onnx_model import OnnxModel

        return OnnxModel(self.settings.model, providers=self.settings.providers)

    def as_run(self):
        """The evaluation as this run saw it: requirements that did not run are marked so."""
        return self.evaluation.as_run(self.outcomes)

    def write_outputs(self) -> str | None:
        """The JSON report and, with --erran-save-baseline, the baseline. Returns a problem."""
        from .analysis.baseline import save_evaluation
        from .files import write_json
        from .report.json_report import report_document

        report = self.settings.report
        try:
            if self.config.option.erran_save_baseline:  # first: if it fails, so does the run
                path = self.settings.baseline_path
                save_evaluation(path, self.evaluation)
                self.saved_baseline = path
            if report is not None:
                write_json(report, report_document(self.as_run()))
                self.report_path = report
            misses = self.settings.misses
            if misses is not None and self.evaluation.review is not None:
                from .analysis.review import sheet_text
                from .files import write_atomic

                write_atomic(misses, sheet_text(self.evaluation.review))
                self.review_path = misses
            self._write_reports()
        except OSError as e:
            self.problems.append(f"erran: cannot write {e.filename}: {e.strerror}")
            _replace_report(report, self.problems[-1].removeprefix("erran: "))
            return self.problems[-1]
        except ErranError as e:  # an image the gallery draws could not be read
            self.problems.append(f"erran: {e}")
            return self.problems[-1]
        return None

    def _write_reports(self) -> None:
        """The HTML gallery and the Markdown summary (also appended to $GITHUB_STEP_SUMMARY)."""
        from .files import write_atomic

        settings, evaluation = self.settings, self.as_run()
        if settings.html is not None:
            from .report.html import render_html

            write_atomic(settings.html, render_html(evaluation, per_section=settings.html_per_bucket,
                                                    created=_reproducible_time()))
            self.written.append(("gallery", settings.html))
        if settings.markdown is not None:
            from .report.markdown import append_step_summary, markdown_document

            link = os.environ.get("ERRAN_HTML_URL") or (
                os.path.relpath(settings.html, settings.markdown.parent) if settings.html is not None else None)
            write_atomic(settings.markdown, markdown_document(evaluation, html_link=link))
            self.written.append(("markdown", settings.markdown))
            summary = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary:
                append_step_summary(Path(summary), evaluation, html_link=link)

    def summary_lines(self) -> list[tuple[str, dict]]:
        if self.evaluation is None:
            return []
        from .report.terminal import shown_path, summary_lines

        lines = summary_lines(self.as_run(), self.saved_baseline, self.report_path)
        if self.review_path is not None:  # before the last line, which says what to do next
            shown = shown_path(self.review_path)
            lines.insert(len(lines) - 1, (f"review sheet: {len(self.evaluation.review)} misses written to {shown}; "
                                          f"fill its `cause` column, then set causes = \"{shown}\" so they become "
                                          "tags", {}))
        if self.written:  # before the last line, which says what to do next
            shown = ", ".join(f"{what} {shown_path(path)}" for what, path in self.written)
            lines.insert(len(lines) - 1, (f"written: {shown}", {}))
        return ([(p, {"red": True, "bold": True}) for p in self.problems]
                + [(n, {"yellow": True}) for n in self.notes] + lines)


def _probe(directory: Path) -> None:
    """Raise OSError when `directory` cannot take a new file (read-only, full, not a folder)."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".erran-probe-"):
        pass


@contextmanager
def _library_warnings_stay_warnings():
    """Warnings that pandas, numpy or Pillow raise inside the pipeline are shown, never turned
    into errors by `-W error`: they are the plugin's business, and an error there would stop
    the run with a traceback instead of a gate."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        yield


def _report_path(option: Path | None, config_path: Path | None, table: dict) -> Path | None:
    """The report path of a config that failed validation, as far as it can be told."""
    if option is not None:
        return option
    configured = table.get("report") if isinstance(table, dict) else None
    if isinstance(configured, str) and configured and config_path is not None:
        return (config_path.parent / configured).resolve()
    return None


def _replace_report(path: Path | None, message: str) -> None:
    """An error report in place of whatever the path held (see json_report.error_document)."""
    if path is None:
        return
    from .files import write_json
    from .report.json_report import error_document

    try:
        write_json(path, error_document(message))
    except OSError:
        try:  # a folder that takes no new file may still let the old report go
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _arguments(impl, **available) -> dict:
    """The hook's arguments that this implementation asks for (pluggy lets it take fewer)."""
    return {name: available[name] for name in impl.argnames}


def _resolve(config: pytest.Config, value: str | None) -> Path | None:
    return None if value is None else (config.invocation_params.dir / value).resolve()


def _reproducible_time() -> str | None:
    """The gallery's time: SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else
    none, so that the same inputs give a byte-identical file."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch.isdigit():
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(int(epoch)))
