"""The library entry: evaluate a model or predictions file from a notebook or a script, no pytest.

    import pytest_erran
    evaluation = pytest_erran.evaluate("erran.toml", model="models/candidate.onnx")
    evaluation.bucket("tube").recall, evaluation.passed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .config import PATH_KEYS, Settings, build_settings, find_config
from .errors import ErranError
from .pipeline import Evaluation, UnitColumns
from .pipeline import evaluate as run_pipeline

OPTION_KEYS = {"batch_size", "threads"}  # what the command line may override besides paths


def load_settings(config: str | Path | Mapping | Settings | None = None, *, rootdir: str | Path | None = None,
                  **options) -> Settings:
    """Settings from an erran.toml or pyproject.toml path, a dict of the same keys, or nothing,
    with `options` (any config key) overriding them; a Settings is returned as it is.

    Paths in a file are relative to it; paths in a dict and in `options` to the working
    directory. `rootdir` (where the default baseline .erran/baseline.json lives, and what
    reported paths are relative to) defaults to the config file's folder, else the working
    directory. Raises ErranError, naming the key, for a bad config.
    """
    if isinstance(config, Settings):
        return config
    cwd = Path.cwd()
    if isinstance(config, Mapping):
        config_path, table = None, dict(config)
        table.update({key: str((cwd / value).resolve()) for key, value in table.items()
                      if key in PATH_KEYS and value is not None})
    elif config is not None:
        path = (cwd / config).resolve()
        if not path.is_file():
            raise ErranError(f"{path}: no such config file; give the path of an erran.toml or a "
                             "pyproject.toml with [tool.erran]")
        config_path, table = find_config(path.parent, path)
        table = dict(table)
    else:
        config_path, table = None, {}
    root = Path(rootdir).resolve() if rootdir is not None else \
        (config_path.parent if config_path is not None else cwd)
    overrides = {}
    for key, value in options.items():
        if key in PATH_KEYS:
            overrides[key] = None if value is None else (cwd / value).resolve()
        elif key in OPTION_KEYS and value is None:
            continue
        else:
            table[key] = value  # validated with the rest of the table
    return build_settings(root, config_path, table, overrides)


def evaluate(config: str | Path | Mapping | Settings | None = None, *, rootdir: str | Path | None = None,
             cache_dir: str | Path | None = None, adapters: Mapping[str, Callable] | None = None,
             unit_columns: Sequence[UnitColumns] = (), progress: Callable[[int, int], None] | None = None,
             **options) -> Evaluation:
    """Evaluate as `pytest --erran-model=...` would, and return the evaluation.

    `config` and `options` as for load_settings (`model=`, `data=`, `predictions=`, `split=`,
    `baseline=`, ...). `cache_dir`: a folder for the prediction cache (none by default).
    `adapters` and `unit_columns`: the extensions conftest.py hooks give (see hooks.py).
    `progress(done, total)`: called as the model runs over the images (0 first, then per batch).

    The result: `.passed`, `.verdicts` (one per requirement: `.id`, `.outcome`, `.message`),
    `.buckets` / `.bucket(name)` (`.recall`, `.positives`, `.hits`, `.missed`, `.comparison`),
    `.units` (the units table with `_hit`), `.predictions`, `.dataset`, `.classes`,
    `.analysis` (the error analysis, as in the JSON report; `analyze=True` for all of it) and
    `.review` (the review sheet's rows with `misses=`; the plugin writes them, this returns them).
    Raises ErranError for bad input, with the message the plugin would print.
    """
    settings = load_settings(config, rootdir=rootdir, **options)
    if not settings.active:
        raise ErranError(f"{settings.source}: nothing to evaluate; give model= (an ONNX model) or "
                         "predictions= (a predictions file)")
    cached = cache_dir is not None and settings.cache  # cache = false turns every cache off
    return run_pipeline(settings, Path(cache_dir) if cached else None,
                        adapters=adapters, unit_columns=unit_columns, progress=progress)
