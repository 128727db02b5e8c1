"""Read the erran config (erran.toml or [tool.erran]), validate it, merge command-line options."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ErranError
from .files import not_a_file
from .locate import config_candidate
from .vocabulary import EVERY, FLOOR_METRICS, METRICS, GateMode, Metric, MetricSpec, TaskName

DEFAULT_BASELINE = Path(".erran") / "baseline.json"
DEFAULT_CACHE_MAX_MB = 2048
# Pillow's own hard limit (twice the 89,478,485 pixels it warns above): nothing Pillow decodes
# is refused by default, and the answer is the same whatever the warning filters.
MAX_IMAGE_PIXELS = 178_956_970
PATH_KEYS = ("model", "data", "predictions", "report", "baseline", "html", "markdown", "misses", "causes")


@dataclass(frozen=True)
class BucketSpec:
    name: str
    where: str | None = None
    tag: str | None = None
    cls: str | None = None


@dataclass(frozen=True)
class Requirement:
    bucket: str
    metric: Metric
    threshold: float | None  # None for a max_drop-only requirement
    max_drop: float | None = None
    gate: GateMode = GateMode.POINT
    min_train: int | None = None  # the bucket needs this many positives in the train split

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]

    @property
    def id(self) -> str:
        """'recall(scratch)>=0.90', 'fp_per_image(fin)<=0.10', 'drop(scratch)<=0.02',
        'coverage(tube)>=5'; the data checks 'coverage>=1' and 'leakage<=0'."""
        limit = self.max_drop if self.metric == Metric.DROP else self.threshold
        return self.spec.requirement_id(self.bucket, limit)


@dataclass(frozen=True)
class Settings:
    config_path: Path | None
    rootdir: Path
    model: Path | None = None
    data: Path | None = None
    predictions: Path | None = None
    report: Path | None = None
    baseline: Path | None = None
    task: TaskName = TaskName.CLASSIFICATION
    classes: tuple[str, ...] | None = None
    negative: str | None = None
    split: str = "dev"
    output: str | None = None
    batch_size: int = 16
    threads: int | None = None
    confidence: float = 0.95
    alpha: float = 0.05
    score_threshold: float = 0.5
    iou_threshold: float = 0.5
    nms_iou: float = 0.7
    preprocess: dict = field(default_factory=dict)
    exif: str = "apply"  # or "ignore": whether images are turned upright by their EXIF orientation
    max_image_pixels: int = MAX_IMAGE_PIXELS  # bigger images are refused (0: no limit)
    # Speed (docs/performance.md): caches, the engine that runs the model, onnxruntime providers.
    cache: bool = True  # --erran-no-cache: no prediction, property or input cache
    cache_max_mb: int = DEFAULT_CACHE_MAX_MB  # the input cache's bound
    engine: str = "local"  # or "ray"
    ray_address: str | None = None  # else RAY_ADDRESS, else a local Ray instance
    ray_workers: int | None = None  # Ray actors (one onnxruntime session each); default: cluster CPUs
    providers: tuple[str, ...] | None = None  # onnxruntime execution providers, in order
    class_thresholds: dict = field(default_factory=dict)
    buckets: tuple[BucketSpec, ...] = ()
    requirements: tuple[Requirement, ...] = ()
    html: Path | None = None  # the gallery of misses (report/html.py)
    markdown: Path | None = None  # the pull-request comment (report/markdown.py)
    html_per_bucket: int = 48  # thumbnails per gallery section
    # error analysis (docs/analysis.md)
    analyze: bool = False
    misses: Path | None = None  # write the review sheet of misses here
    review: int = 100  # misses on the review sheet
    causes: Path | None = None  # a filled review sheet: its causes become tags
    auto: dict = field(default_factory=dict)  # [auto] thresholds; unset ones are calibrated
    min_positives: int = 10
    target_precision: float | None = None
    suggestions: dict = field(default_factory=dict)  # [suggestions]: key -> experiments
    train_split: str = "train"
    min_train: int = 1
    require_coverage: bool = False
    drift_statistic: float = 0.2
    near_duplicate_bits: int = 4
    forbid_leakage: bool = False
    correction: str = "holm"  # of the max_drop family: "holm" or "none"

    @property
    def analyzing(self) -> bool:
        """The full analysis is computed: asked for, or needed for the review sheet."""
        return self.analyze or self.misses is not None

    @property
    def active(self) -> bool:
        return self.model is not None or self.predictions is not None

    @property
    def baseline_path(self) -> Path:
        return self.baseline or self.rootdir / DEFAULT_BASELINE

    @property
    def source(self) -> str:
        return str(self.config_path) if self.config_path else "the command line"


def find_config(rootdir: Path, explicit: Path | None) -> tuple[Path | None, dict]:
    """The raw config table and its file: --erran-config, else erran.toml, else [tool.erran]."""
    if explicit is not None and not explicit.is_file():
        raise ErranError(f"--erran-config: {explicit} {not_a_file(explicit)}; give the path of an erran.toml")
    path = explicit or config_candidate(rootdir)
    if path is None:
        return None, {}
    table = _read_toml(path)
    if path.name == "pyproject.toml":
        table = table.get("tool", {}).get("erran")
        if table is None:
            if explicit is not None:
                raise ErranError(f"--erran-config: {explicit} has no [tool.erran] table")
            return None, {}  # "tool.erran" appeared only in a comment or a string
    return path, table


def _read_toml(path: Path) -> dict:
    try:
        raw = path.read_bytes()
        return tomllib.loads(raw.decode("utf-8-sig"))  # a BOM, as Windows editors write, is fine
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ErranError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); TOML "
                         "files are UTF-8: save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        # "Invalid value (at line 7, column 10)" -> "erran.toml line 7: not valid TOML (Invalid value, ...)"
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(e))
        if found:
            what, line, column = found.groups()
            raise ErranError(f"{path} line {line}: not valid TOML ({what}, column {column}); "
                             "fix the syntax there") from None
        what = re.sub(r" \(at end of document\)$", "", str(e))
        raise ErranError(f"{path}: not valid TOML ({what}, by the end of the file); "
                         "fix the syntax") from None
    except OSError as e:
        raise ErranError(f"{path}: cannot read the config: {e.strerror}") from None


def load_schema(name: str) -> dict:
    return json.loads(resources.files("pytest_erran").joinpath("schemas", name).read_text("utf-8"))


def validate(table: dict, source: str) -> None:
    """Check the raw table against the shipped JSON Schema; the first error names its key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema("config.schema.json"))
    # An unknown key first: `recal = 0.9` also breaks "needs recall", but the typo is the news.
    errors = sorted(validator.iter_errors(table), key=lambda e: (
        list(map(str, e.absolute_path)), e.validator != "additionalProperties", e.message))
    if errors:
        raise ErranError(f"{source}: {_describe(errors[0], table)}")


TOML_TYPES = {"array": "an array", "object": "a table", "string": "a string", "number": "a number",
              "integer": "an integer", "boolean": "a boolean"}


def _describe(error, table: dict) -> str:
    where = _key_path(error.absolute_path)
    which = ""  # [[require]] blocks have no names: say which one by its bucket
    parts = list(error.absolute_path)
    if len(parts) > 1 and parts[0] == "require" and isinstance(parts[1], int):
        entry = table["require"][parts[1]]
        if isinstance(entry, dict) and isinstance(entry.get("bucket"), str):
            which = f" with bucket = '{entry['bucket']}'"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        if known and unknown:
            hint = difflib.get_close_matches(unknown[0], known, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else f"; known keys: {', '.join(known)}"
            place = f" in {where}{which}" if where else ""
            return f"unknown key '{unknown[0]}'{place}{suggestion}"
    if error.validator == "anyOf" and where.startswith("require"):
        return f"{where}{which}: give one of recall, precision, max_fp_per_image, max_drop or min_train"
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{where}{which}: missing `{missing[0]}`; add it"
    if error.validator == "minProperties" and parts[:1] == ["buckets"]:
        return f"[{where}] is empty; give it a `where`, `tag` or `class`"
    if error.validator == "uniqueItems":
        twice = next(v for i, v in enumerate(error.instance) if v in error.instance[:i])
        return f"key '{where}' lists {_toml(twice)} twice; list it once"
    if error.validator == "type" and isinstance(error.validator_value, str):
        wanted = TOML_TYPES.get(error.validator_value, error.validator_value)
        return f"key '{where}'{which} must be {wanted}, got {_toml(error.instance)}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"key '{where}'{which} must be {_range(error.schema)}, got {_toml(error.instance)}"
    return f"key '{where or 'top level'}'{which}: {error.message}"


def _range(schema: dict) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    bounds = []
    if low is not None:
        bounds.append(f"at least {low}")
    elif "exclusiveMinimum" in schema:
        bounds.append(f"above {schema['exclusiveMinimum']}")
    if high is not None:
        bounds.append(f"at most {high}")
    elif "exclusiveMaximum" in schema:
        bounds.append(f"below {schema['exclusiveMaximum']}")
    return " and ".join(bounds)


def _toml(value) -> str:
    """A value as the user wrote it in TOML: "ok", true, [1, 2]."""
    return json.dumps(value) if isinstance(value, (str, bool, list, dict)) else repr(value)


def _key_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def build_settings(rootdir: Path, config_path: Path | None, table: dict, overrides: dict) -> Settings:
    """Validated table + command-line overrides -> Settings. Paths in the file are relative to it;
    paths given as options are already absolute (the plugin resolves them against the cwd)."""
    source = str(config_path) if config_path else "the config"
    validate(table, source)
    base = config_path.parent if config_path else rootdir
    values = {key: table[key] for key in table if key not in ("require", "buckets", "classes", "suggestions")}
    for key in PATH_KEYS:
        if key in values:
            values[key] = (base / values[key]).resolve()
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
    if "task" in values:
        values["task"] = TaskName(values["task"])
    if "classes" in table:
        values["classes"] = tuple(table["classes"])
    if "providers" in values:
        values["providers"] = tuple(values["providers"])
    values["buckets"] = tuple(
        BucketSpec(name, spec.get("where"), spec.get("tag"), spec.get("class"))
        for name, spec in sorted(table.get("buckets", {}).items())
    )
    values["suggestions"] = {key: [value] if isinstance(value, str) else list(value)
                             for key, value in table.get("suggestions", {}).items()}
    values["requirements"] = _requirements(table.get("require", []), source) + _data_checks(values)
    return Settings(config_path=config_path, rootdir=rootdir, **values)


def _data_checks(values: dict) -> tuple[Requirement, ...]:
    """`require_coverage` and `forbid_leakage` as items of their own: 'coverage>=1', 'leakage<=0'."""
    checks = []
    if values.get("require_coverage"):
        checks.append(Requirement(EVERY, Metric.COVERAGE, float(values.get("min_train", 1))))
    if values.get("forbid_leakage"):
        checks.append(Requirement(EVERY, Metric.LEAKAGE, 0.0))
    return tuple(checks)


def _requirements(entries: list[dict], source: str) -> tuple[Requirement, ...]:
    found: dict[str, Requirement] = {}
    for index, entry in enumerate(entries):
        floors = [m for m in FLOOR_METRICS if METRICS[m].key in entry]
        if len(floors) > 1:
            keys = " and ".join(METRICS[m].key for m in floors)
            raise ErranError(f"{source}: require[{index}] sets {keys}; give one per [[require]]")
        # min_train alone is a coverage requirement; beside a floor or max_drop it rides along
        metric = floors[0] if floors else Metric.DROP if "max_drop" in entry else Metric.COVERAGE
        threshold = entry[METRICS[metric].key] if floors else None
        if metric == Metric.COVERAGE:
            threshold = float(entry["min_train"])
        requirement = Requirement(
            bucket=entry["bucket"],
            metric=metric,
            threshold=threshold,
            max_drop=entry.get("max_drop"),
            gate=GateMode(entry.get("gate", GateMode.POINT)),
            min_train=entry.get("min_train"),
        )
        if requirement.id in found:
            raise ErranError(f"{source}: require[{index}] repeats {requirement.id}; remove one")
        found[requirement.id] = requirement
    return tuple(sorted(found.values(), key=lambda r: r.id))
