"""The plugin's session state: settings from pytest options, the evaluation, the files it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .config import build_settings, find_config
from .errors import ErranError

OPTION_PATHS = {"model": "erran_model", "data": "erran_data", "predictions": "erran_predictions",
                "report": "erran_report", "baseline": "erran_baseline", "misses": "erran_misses"}


class ErranState:
    def __init__(self, config: pytest.Config, settings):
        self.config = config
        self.settings = settings
        self.evaluation = None
        self.saved_baseline: Path | None = None
        self.report_path: Path | None = None
        self.review_path: Path | None = None
        self.problems: list[str] = []

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> "ErranState | None":
        """The state when the plugin is active (a model or predictions are given), else None."""
        option = config.option
        overrides = {key: _resolve(config, getattr(option, name)) for key, name in OPTION_PATHS.items()}
        overrides["batch_size"] = option.erran_batch_size
        overrides["threads"] = option.erran_threads
        overrides["analyze"] = True if option.erran_analyze else None
        try:
            config_path, table = find_config(config.rootpath, _resolve(config, option.erran_config))
            if config_path is None and not (overrides["model"] or overrides["predictions"]):
                return None
            # A config that exists is always validated: `modle = ...` must be an error, not a
            # config without a model that silently turns the gate off.
            settings = build_settings(config.rootpath, config_path, table, overrides)
        except ErranError as e:
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

        cache = getattr(self.config, "cache", None)
        cache_dir = cache.mkdir("erran-predictions") if cache is not None else None
        try:
            self.evaluation = evaluate(self.settings, cache_dir, adapters=self._adapters(),
                                       unit_columns=self._unit_columns())
        except ErranError as e:
            raise pytest.UsageError(f"erran: {e}") from None

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

        return OnnxModel(self.settings.model)

    def write_outputs(self) -> str | None:
        """The JSON report and, with --erran-save-baseline, the baseline. Returns a problem."""
        from .analysis.baseline import save_evaluation
        from .files import write_json
        from .report.json_report import report_document

        report = self.settings.report
        try:
            if report is not None:
                write_json(report, report_document(self.evaluation))
                self.report_path = report
            misses = self.settings.misses
            if misses is not None and self.evaluation.review is not None:
                from .analysis.review import sheet_text
                from .files import write_atomic

                write_atomic(misses, sheet_text(self.evaluation.review))
                self.review_path = misses
            if self.config.option.erran_save_baseline:
                path = self.settings.baseline_path
                save_evaluation(path, self.evaluation)
                self.saved_baseline = path
        except OSError as e:
            self.problems.append(f"erran: cannot write {e.filename}: {e.strerror}")
            return self.problems[-1]
        return None

    def summary_lines(self) -> list[tuple[str, dict]]:
        if self.evaluation is None:
            return []
        from .report.terminal import summary_lines

        lines = summary_lines(self.evaluation, self.saved_baseline, self.report_path)
        if self.review_path is not None:
            from .report.terminal import shown_path

            shown = shown_path(self.review_path)
            lines.insert(-1, (f"review sheet: {len(self.evaluation.review)} misses written to {shown}; fill its "
                              f"`cause` column, then set causes = \"{shown}\" so they become tags", {}))
        return [(p, {"red": True, "bold": True}) for p in self.problems] + lines


def _arguments(impl, **available) -> dict:
    """The hook's arguments that this implementation asks for (pluggy lets it take fewer)."""
    return {name: available[name] for name in impl.argnames}


def _resolve(config: pytest.Config, value: str | None) -> Path | None:
    return None if value is None else (config.invocation_params.dir / value).resolve()
