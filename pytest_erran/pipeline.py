"""The pipeline: config -> task.load -> checks -> measurements -> buckets -> task.predict -> results
-> verdicts -> error analysis.

Image measurements (properties, fingerprints) come from the cache, else from the model's own
decode threads (then the buckets that need them are built after prediction), else from a
decode-only pass (measuring.py).

It knows stages, not tasks: the task named in the settings loads the dev set and predicts, and
everything after prediction works on the units table every task hands back (units.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import auto, coverage, error_analysis, review
from .analysis import baseline as baseline_io
from .analysis.buckets import (
    Bucket,
    bucket_names,
    build_buckets,
    check_references,
    check_wheres,
    positive_mask,
)
from .analysis.gate import Verdict, as_run, judge
from .analysis.results import BucketResult, bucket_results
from .analysis.stats import holm
from .config import Settings
from .errors import ErranError, prefixed
from .files import portable_path
from .inference.batches import default_threads
from .inference.cache import PredictionCache
from .inference.engine import Engine
from .inference.exporters import Export, recognise
from .inference.input_cache import InputCache
from .inference.onnx_model import OnnxModel
from .inference.pixel_limit import pixel_limit
from .measuring import MEASURED, Measuring
from .tasks import Context, task_for
from .tasks.dataset import Dataset, check_labels, file_sha256
from .units import BOX, ClassScores, Detections
from .vocabulary import ALL, AUTO_PREFIX, Metric, TaskName

# conftest.py's pytest_erran_unit_columns, or a library caller's: (units, images, settings) ->
# {column: values}, added to the units table before buckets are built.
UnitColumns = Callable[[pd.DataFrame, pd.DataFrame, Settings], Mapping[str, Sequence] | None]


@dataclass
class Evaluation:
    settings: Settings
    classes: tuple[str, ...]
    dataset: Dataset
    model: dict  # path and sha256 of the model (or of the predictions file)
    units: pd.DataFrame  # the dataset's units with `_hit` (and `_pred`, `_score`): see units.py
    predictions: ClassScores | Detections  # what the model (or file) predicted, as matched
    buckets: dict[str, BucketResult]
    verdicts: list[Verdict]
    baseline: baseline_io.Baseline | None = None
    drift: dict | None = None  # shared / added / removed positives against the baseline
    timing: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one-line warnings (a cache that was skipped)
    # The error analysis, JSON-able (docs/analysis.md): coverage, thresholds and duplicates when
    # they apply; everything else with `analyze`. None when there is nothing to say.
    analysis: dict | None = None
    review: pd.DataFrame | None = None  # the review sheet's rows, when `misses` is set
    auto_masks: dict[str, np.ndarray] = field(default_factory=dict)  # auto:* bucket -> mask over units

    def bucket(self, name: str) -> BucketResult:
        if name not in self.buckets:
            raise KeyError(f"no bucket named {name!r}; buckets: {', '.join(self.buckets)}")
        return self.buckets[name]

    @property
    def task(self) -> TaskName:
        return self.settings.task

    @property
    def passed(self) -> bool:
        """Every requirement held: what exit status 0 means."""
        return all(verdict.passed for verdict in self.verdicts)

    def as_run(self, outcomes: Mapping[str, str]) -> "Evaluation":
        """This evaluation as a pytest run saw it: `outcomes` maps the id of each requirement
        whose item ran to its pytest outcome; the others are marked not run (gate.as_run)."""
        return replace(self, verdicts=[as_run(v, outcomes.get(v.id)) for v in self.verdicts])

    @property
    def data(self) -> dict:
        return {"path": portable_path(self.dataset.path, self.settings.rootdir), "sha256": self.dataset.sha256,
                "units": len(self.units)}


def evaluate(settings: Settings, cache_dir: Path | None = None, *,
             adapters: Mapping[str, Callable] | None = None,
             unit_columns: Sequence[UnitColumns] = (),
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Evaluate `settings`; `adapters` are extra output adapters by name (`output = "<name>"`),
    `unit_columns` add columns to the units table before buckets are built, `progress(done,
    total)` hears how many images the model has run over."""
    with pixel_limit(settings.max_image_pixels):  # one answer whatever the warning filters
        return _evaluate(settings, cache_dir, adapters, unit_columns, progress)


def _evaluate(settings: Settings, cache_dir: Path | None, adapters: Mapping[str, Callable] | None,
              unit_columns: Sequence[UnitColumns], progress: Callable[[int, int], None] | None) -> Evaluation:
    started = time.perf_counter()
    notes: list[str] = []
    with _naming(settings):
        check_wheres(settings.buckets)
    task = task_for(settings.task)
    model = OnnxModel(settings.model, providers=settings.providers) if settings.predictions is None else None
    if settings.data is None:
        where = (f"in {settings.config_path}" if settings.config_path else
                 f"in a config (no erran.toml or [tool.erran] in the rootdir {settings.rootdir})")
        raise ErranError(f"no dev set: set `data` {where} or pass --erran-data PATH")
    export = recognise(model) if model is not None else None
    if export is not None:
        _check_task(settings, export)
    dataset = task.load(settings)
    classes = _classes(settings, export, dataset)
    if settings.causes is not None:  # a filled review sheet: its causes become tags
        review.apply_causes(review.read_causes(settings.causes),
                            [dataset.units] + ([dataset.other_units] if dataset.other_units is not None else []))
    # Everything that needs no predictions is checked before the model runs over every image.
    check_labels(dataset, classes)
    task.check(settings, dataset, classes)
    has_boxes = all(column in dataset.units.columns for column in BOX)
    with _naming(settings):
        check_references(bucket_names(classes, settings.negative, settings.buckets) + auto.names(has_boxes),
                         classes, settings)
        _check_split_requests(settings, dataset)
    threads = settings.threads or default_threads()
    measuring = Measuring(settings, dataset, cache_dir, notes)
    buckets = None
    if not measuring.pending:  # nothing to measure, or all of it cached: columns before the model
        measuring.finish(threads)
        measuring.add_columns()
        _add_unit_columns(settings, dataset, unit_columns)
        buckets = _checked_buckets(settings, dataset, classes)
    elif not unit_columns:  # measured in the model's decode: catch a broken `where` before it
        _precheck_wheres(settings, dataset, classes)
    baseline = baseline_io.load(settings.baseline_path, settings.task)
    loaded = time.perf_counter()

    source = settings.predictions or settings.model
    identity = {"path": portable_path(source, settings.rootdir),
                "sha256": model.sha256() if model is not None else file_sha256(source)}
    if export is not None and export.description:
        identity["export"] = export.description  # what was recognised, for the reports
    images = dataset.images
    cache = PredictionCache(cache_dir, identity["sha256"], dataset.sha256, images["id"].tolist(),
                            images["_path"].tolist(), notes)
    engine = _engine(settings, dataset, cache_dir)
    result = task.predict(Context(settings, dataset, classes, model, cache, dict(adapters or {}),
                                  progress=progress, observe=measuring.observe, export=export,
                                  engine=engine))
    finished = time.perf_counter()
    if buckets is None:
        measuring.finish(threads)  # what the model's decode did not measure (predictions from cache)
        measuring.add_columns(result.units)
        _add_unit_columns(settings, dataset, unit_columns)
        _copy_new_columns(dataset.units, result.units)
        buckets = _checked_buckets(settings, dataset, classes)

    splits = _splits(dataset, measuring)
    wanted = settings.analyzing or any(name.startswith(AUTO_PREFIX) for name in _required(settings))
    thresholds = error_analysis.thresholds_for(settings, dataset.units, splits) if wanted else {}
    auto_masks = auto.masks(dataset.units, thresholds)
    buckets = _with_required_auto(settings, dataset, buckets, auto_masks)
    results = bucket_results(result.units, buckets, settings.negative, settings.confidence, result.precision,
                             len(dataset.images), baseline)
    analysis = error_analysis.analyse(error_analysis.Inputs(
        settings=settings, classes=classes, units=result.units, images=dataset.images,
        predictions=result.predictions, buckets=buckets, thresholds=thresholds, auto_masks=auto_masks,
        baseline=baseline, others=splits, dhash=measuring.dhash, pixels=measuring.pixels))
    verdicts = _verdicts(settings, results, analysis)
    return Evaluation(
        settings=settings, classes=classes, dataset=dataset, model=identity, units=result.units,
        predictions=result.predictions, buckets=results, verdicts=verdicts, baseline=baseline,
        drift=_drift(results[ALL], baseline) if baseline else None,
        timing={"load_s": loaded - started, "predict_s": finished - loaded, "predicted": result.predicted,
                "images": len(dataset.images), "inputs_cached": engine.inputs.hits,
                "inputs_decoded": engine.inputs.decoded, "analysis_s": time.perf_counter() - finished},
        notes=notes, analysis=analysis.document or None, review=analysis.review, auto_masks=auto_masks,
    )


def _engine(settings: Settings, dataset: Dataset, cache_dir: Path | None) -> Engine:
    """The runner of the model: local decode threads with the input cache under cache_dir/inputs
    (keyed by the dev set's path and split, not its hash: an edited manifest keeps its cached
    images), or Ray."""
    inputs = InputCache(cache_dir / "inputs" if cache_dir is not None else None, settings.cache_max_mb)
    return Engine(batch_size=settings.batch_size, threads=settings.threads or default_threads(),
                  inputs=inputs, dataset=f"{Path(dataset.path).resolve()}\0{settings.split}",
                  kind=settings.engine, ray_address=settings.ray_address, ray_workers=settings.ray_workers)


def _required(settings: Settings) -> list[str]:
    return [r.bucket for r in settings.requirements]


def _check_split_requests(settings: Settings, dataset: Dataset) -> None:
    """min_train, require_coverage and forbid_leakage need the other splits' rows."""
    coverage = settings.require_coverage or any(r.min_train is not None for r in settings.requirements)
    asked = [key for key, on in (("min_train/require_coverage", coverage),
                                 ("forbid_leakage", settings.forbid_leakage)) if on]
    if not asked:
        return
    if dataset.other_images is None:
        raise ErranError(f"{' and '.join(asked)} compare splits, and {dataset.path} has no `split` column "
                         "(COCO: a `split` key on each image); add one, or remove the setting")
    splits = set(dataset.other_images["split"].astype(str)) | {settings.split}
    if coverage and settings.train_split not in splits:
        raise ErranError(f"min_train/require_coverage count positives in the split '{settings.train_split}', "
                         f"and {dataset.path} has none (splits: {', '.join(sorted(splits))}); set "
                         "`train_split` to the training split's name")


def _precheck_wheres(settings: Settings, dataset: Dataset, classes: tuple[str, ...]) -> None:
    """Each `where` evaluated once with the properties still to measure as blanks: a typo or a
    broken query stops the run before the model decodes every image."""
    blanks = {name: np.nan for name in MEASURED if name not in dataset.units.columns}
    with _naming(settings):
        build_buckets(dataset.units.assign(**blanks), classes, settings.negative, settings.buckets)


def _copy_new_columns(source: pd.DataFrame, target: pd.DataFrame) -> None:
    for column in source.columns:
        if column not in target.columns:
            target[column] = source[column].to_numpy()


def _splits(dataset: Dataset, measuring: Measuring) -> error_analysis.Splits | None:
    if dataset.other_units is None:
        return None
    measured = measuring.other_measured if measuring.fingerprints else None
    return error_analysis.Splits(dataset.other_units, dataset.other_images,
                                 None if measured is None else measured.dhash,
                                 None if measured is None else measured.pixels)


def _with_required_auto(settings: Settings, dataset: Dataset, buckets: dict[str, Bucket],
                        masks: dict[str, np.ndarray]) -> dict[str, Bucket]:
    """Automatic buckets a requirement names become buckets of the evaluation (with positives)."""
    positive = positive_mask(dataset.units, settings.negative)
    for name in sorted(set(_required(settings))):
        if name.startswith(AUTO_PREFIX) and name not in buckets:
            buckets[name] = Bucket(name, masks[name])
            needs_positives = any(r.bucket == name and r.metric in (Metric.RECALL, Metric.DROP)
                                  for r in settings.requirements)
            if needs_positives and not (masks[name] & positive).any():
                raise ErranError(f"{settings.source}: [[require]] bucket = '{name}': the bucket has no "
                                 f"positives in {dataset.path}, so its recall means nothing; set its "
                                 "threshold in [auto] or remove the requirement")
    return buckets


def _verdicts(settings: Settings, results: dict[str, BucketResult], analysis) -> list[Verdict]:
    """Every requirement's verdict; the max_drop p-values are adjusted as one family (Holm)."""
    family = {}
    for requirement in settings.requirements:
        result = results.get(requirement.bucket)
        if requirement.max_drop is not None and result is not None and result.comparison is not None \
                and result.comparison.delta is not None:
            family[requirement.bucket] = result.comparison.regression_p
    adjusted = holm(family) if settings.correction == "holm" and len(family) > 1 else {}
    verdicts = []
    for requirement in settings.requirements:
        if requirement.metric in (Metric.COVERAGE, Metric.LEAKAGE):
            verdicts.append(error_analysis.data_check_verdict(requirement, analysis, settings))
            continue
        verdict = judge(requirement, results[requirement.bucket], settings.alpha, settings.confidence,
                        adjusted.get(requirement.bucket), len(family))
        if requirement.min_train is not None:
            verdict = coverage.with_min_train(verdict, coverage.train_positives(analysis.coverage, requirement.bucket),
                                              settings.train_split)
        verdicts.append(verdict)
    return verdicts


def _add_unit_columns(settings: Settings, dataset: Dataset, providers: Sequence[UnitColumns]) -> None:
    """Columns computed by the project's own code (a defect's area in mm², say), checked like a
    manifest's: one value per unit, no name of erran's own or of a column already there."""
    units = dataset.units
    for provider in providers:
        name = getattr(provider, "__qualname__", repr(provider))
        columns = provider(units.copy(), dataset.images.copy(), settings) or {}
        if not isinstance(columns, Mapping):
            raise ErranError(f"pytest_erran_unit_columns ({name}) returned {type(columns).__name__}; "
                             "return a dict of column name -> one value per unit")
        for column, values in columns.items():
            if not isinstance(column, str) or column.startswith("_") or column in units.columns:
                raise ErranError(f"pytest_erran_unit_columns ({name}): column {column!r} is "
                                 "reserved or already a column of the units; choose a new name")
            values = np.asarray(values)
            if values.shape != (len(units),):
                raise ErranError(f"pytest_erran_unit_columns ({name}): column '{column}' has "
                                 f"shape {list(values.shape)}; give one value per unit ({len(units)})")
            units[column] = values


def _checked_buckets(settings: Settings, dataset: Dataset, classes: tuple[str, ...]) -> dict[str, Bucket]:
    """The buckets, each required one checked to hold positives (else its recall means nothing)."""
    with _naming(settings):
        buckets = build_buckets(dataset.units, classes, settings.negative, settings.buckets)
        positive = positive_mask(dataset.units, settings.negative)
        for requirement in settings.requirements:
            if requirement.bucket.startswith(AUTO_PREFIX):
                continue  # built with its threshold, and checked then (_with_required_auto)
            if requirement.metric in (Metric.RECALL, Metric.DROP) and \
                    not (buckets[requirement.bucket].mask & positive).any():
                raise ErranError(f"[[require]] bucket = '{requirement.bucket}': the bucket has no "
                                 f"positives in {dataset.path}, so its recall means nothing; fix the "
                                 "bucket or the data")
    return buckets


def _naming(settings: Settings):
    """Errors about the config's own entries start with the config file."""
    return prefixed(settings.source)


def _classes(settings: Settings, export: Export | None, dataset: Dataset) -> tuple[str, ...]:
    """Model output index -> class name: the config, else the model's metadata (`classes`, or
    Ultralytics' `names`), else the classes the dev set defines (COCO categories in id order),
    else (a predictions file) the labels seen. Dev-set labels then map to them by name."""
    from_model = export.classes if export is not None else None
    if settings.classes:
        configured = settings.classes
        if export is not None and export.label_offset and configured[0] == "__background__":
            configured = configured[1:]  # torchvision's own list, label 0 first: the same mapping
        if from_model and from_model != configured:  # an order mix-up would map every score wrong
            raise ErranError(f"{settings.source}: classes = {list(settings.classes)} but the model's "
                             f"metadata says {list(from_model)} (its {export.classes_source}, in output "
                             "order); make them agree, or remove `classes` from the config")
        return configured
    if from_model:
        return from_model
    if dataset.classes:
        return dataset.classes
    if export is not None and export.class_values:  # skl2onnx: its labels are the class values
        raise ErranError(f"{settings.model}: recognised as {export.description}, but no `classes` in "
                         "the config; list the values it was trained on (its labels, as strings): "
                         "classes = [\"1\", \"3\", ...]")
    if export is not None:  # never guessed (the labels' alphabetical order): it would mislabel
        example = ", ".join(f'"{label}"' for label in sorted(dataset.labels)[:3])
        raise ErranError(f"{settings.model}: no `classes` in the config and none in the model's "
                         "metadata, so which output is which class is unknown; list them in the "
                         f"model's output order in the config: classes = [{example}, ...]")
    return tuple(sorted(dataset.labels))


def _check_task(settings: Settings, export: Export) -> None:
    """A model whose metadata names its task is run as that task."""
    if export.task is not None and export.task != settings.task:
        raise ErranError(f"{settings.model}: recognised as {export.description} (a {export.task} "
                         f"model), but the run's task is '{settings.task}'; set task = "
                         f"\"{export.task}\" in the config")


def _drift(everything: BucketResult, baseline: baseline_io.Baseline) -> dict:
    """The dev set against the baseline's: the 'all' bucket's comparison counts every positive."""
    shared = everything.comparison.shared
    return {"shared": shared, "added": everything.comparison.added, "removed": len(baseline.units) - shared}
