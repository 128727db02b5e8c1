import json
import re
import textwrap

# Imported once, up front: pytester restores sys.modules after every in-process run, and
# importing these C extensions a second time crashes the interpreter (nanobind, pybind).
import importlib
import io
import pkgutil

import jsonschema  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import pandas  # noqa: F401
import pytest

import pytest_erran


def _load_parquet_support():
    """pandas imports its Parquet glue lazily; imported again after pytester drops it, it
    registers pandas' Arrow extension types twice (ArrowKeyError in later Parquet tests)."""
    buffer = io.BytesIO()
    pandas.DataFrame({"a": [1]}).to_parquet(buffer)
    pandas.read_parquet(io.BytesIO(buffer.getvalue()))


_load_parquet_support()

try:  # its pytest plugin would otherwise re-import it after every in-process run (~1.5 s each)
    import hypothesis  # noqa: F401
except ImportError:
    pass

try:  # a test-only plugin, loaded by every in-process run: import it (and jinja2) once
    import pytest_html.plugin  # noqa: F401
except ImportError:
    pass

# The plugin's own modules too: a module imported afresh inside one run would raise its own
# ErranError class, which the plugin's `except ErranError` (an older import) would not catch.
for _module in pkgutil.walk_packages(pytest_erran.__path__, "pytest_erran."):
    importlib.import_module(_module.name)

import detection_builders
from builders import CLASSES, channel_mean_model, write_manifest

pytest_plugins = ["pytester"]

BASE_CONFIG = """
model = "model.onnx"
data = "dev.csv"
classes = ["ok", "scratch", "dent"]
negative = "ok"
"""


class Project:
    """A user's project in a pytester folder, for either task: a model or a predictions file, a
    dev set and an erran.toml. Classification paints images whose dominant channel decides the
    prediction (builders.py); detection writes a Scene (detection_builders.py)."""

    def __init__(self, pytester):
        self.pytester = pytester
        self.path = pytester.path

    # classification
    def model(self, name="model.onnx", **kwargs):
        return channel_mean_model(self.path / name, **kwargs)

    def data(self, rows, name="dev.csv"):
        return write_manifest(self.path, rows, name)

    # detection
    def coco(self, scene, name="dev.json"):
        return detection_builders.write_coco(self.path, scene, name)

    def objects(self, scene, name="dev.csv"):
        return detection_builders.write_object_table(self.path, scene, name)

    def coco_results(self, scene, detections=None, name="preds.json"):
        return detection_builders.write_coco_results(self.path, scene, detections, name)

    def detection_table(self, scene, detections=None, name="preds.csv"):
        return detection_builders.write_detection_table(self.path, scene, detections, name)

    def detector(self, scene, name="model.onnx", layout="boxes_scores_labels", input_size=(64, 32),
                 resize="stretch", detections=None, classes=None, **kwargs):
        """A lookup model that returns `detections` (default: the scene's) for each image."""
        table = detection_builders.model_detections(scene, input_size, resize, detections, classes)
        if layout == "yolo":
            return detection_builders.yolo_model(self.path / name, input_size, len(scene.classes), table,
                                                 **kwargs)
        return detection_builders.boxes_scores_labels_model(self.path / name, input_size, table, **kwargs)

    # both
    def config(self, extra="", base=BASE_CONFIG):
        (self.path / "erran.toml").write_text(textwrap.dedent(base) + textwrap.dedent(extra))

    def write_config(self, text):
        """erran.toml holding exactly `text` (dedented)."""
        (self.path / "erran.toml").write_text(textwrap.dedent(text).lstrip())

    def run(self, *args):
        return self.pytester.runpytest("-p", "no:randomly", *args)

    def report(self, *args, name="report.json"):
        result = self.run(f"--erran-report={name}", *args)
        return result, json.loads((self.path / name).read_text())


@pytest.fixture
def project(pytester):
    return Project(pytester)


def rows_with_misses(n=30, missed=(1, 4, 5, 10, 17)):
    """n images cycling through the classes; rows in `missed` look like "ok" (a miss when defective)."""
    rows = []
    for i in range(n):
        label = CLASSES[i % 3]
        rows.append({
            "id": f"u{i:03d}", "label": label,
            "looks_like": "ok" if i in missed else label,
            "lighting": "low" if i % 2 else "normal",
            "tags": "severe;edge" if i % 4 == 0 else ("severe" if i % 4 == 1 else ""),
            "camera": i % 3,
        })
    return rows


NO_OUTCOME = re.compile(r"\d+ (passed|failed|error|skipped)")


def usage_error(result, *fragments):
    """The run stopped with exit 4 before any requirement ran; the one message holds `fragments`."""
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert "erran.toml::" not in out and not NO_OUTCOME.search(out) and "= erran =" not in out, out
    starts = [i for i, line in enumerate(result.errlines) if line.startswith("ERROR:")]
    assert len(starts) == 1, out
    message = " ".join(result.errlines[starts[0]:])  # argparse puts usage and error on two lines
    for fragment in fragments:
        assert fragment in message, message
    return message
