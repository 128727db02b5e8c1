"""The tasks, behind one interface: the pipeline asks the registry for `settings.task` and never
branches on it. A task loads its dev set, runs the checks only it can make, and predicts and
matches, handing back one `TaskResult` (see units.py).

Adding a task is a new wing beside classification/ and detection/, and one line in TASKS.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..vocabulary import TaskName

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..config import Settings
    from ..inference.batches import Batch
    from ..inference.cache import PredictionCache
    from ..inference.engine import Engine
    from ..inference.exporters import Export
    from ..inference.onnx_model import OnnxModel
    from ..units import TaskResult
    from .dataset import Dataset

# Imported on first use: a classification run never imports the detection wing.
TASKS: dict[TaskName, str] = {
    TaskName.CLASSIFICATION: "pytest_erran.tasks.classification.task:ClassificationTask",
    TaskName.DETECTION: "pytest_erran.tasks.detection.task:DetectionTask",
}


@dataclass(frozen=True)
class Context:
    """What a task's predict step works with."""

    settings: "Settings"
    dataset: "Dataset"
    classes: tuple[str, ...]  # model output index -> class name
    model: "OnnxModel | None"  # None: settings.predictions is read instead
    cache: "PredictionCache"
    adapters: Mapping[str, Callable] = field(default_factory=dict)  # output adapters from hooks
    progress: Callable[[int, int], None] | None = None  # (images done, total) while the model runs
    # observe(i, image): sees image i as the model's decode threads decode it, for measurements
    # made from the same decode
    observe: Callable[[int, object], None] | None = None
    export: "Export | None" = None  # what the model file says about its exporter (with a model)
    engine: "Engine | None" = None  # runs the model over the images (local threads or Ray)

    def batches(self, model: "OnnxModel", paths, sources, prep) -> "Iterator[Batch]":
        """The model's outputs batch by batch, in image order, from whichever engine runs it."""
        from ..inference.batches import default_threads
        from ..inference.engine import Engine

        engine = self.engine or Engine(self.settings.batch_size, self.settings.threads or default_threads())
        return engine.batches(model, paths, sources, prep, self.progress, self.observe)


@dataclass(frozen=True)
class AdapterOptions:
    """What an output adapter is told besides the outputs (see hooks.pytest_erran_output_adapters)."""

    classes: tuple[str, ...]  # model output index -> class name
    input_size: tuple[int, int] | None  # (width, height) of the model's input; None when each
    # image is fed at its own size (resize = "native")
    score_threshold: float  # detection: the lowest score any class keeps
    nms_iou: float  # detection: the IoU above which NMS suppresses a box


def adapter_identity(name: str, adapter: Callable) -> str:
    """For cache keys: a project's adapter is identified by its code, so editing it recomputes."""
    try:
        code = inspect.getsource(adapter)
    except (OSError, TypeError):
        code = repr(getattr(adapter, "__code__", adapter))
    return f"{name}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"


class Task(Protocol):
    name: TaskName

    def load(self, settings: "Settings") -> "Dataset":
        """The dev set's images and units tables (units.py documents their columns)."""

    def check(self, settings: "Settings", dataset: "Dataset", classes: tuple[str, ...]) -> None:
        """Checks only this task can make, before any image is decoded; raise ErranError."""

    def predict(self, context: Context) -> "TaskResult":
        """Predictions (from the model or the predictions file) matched to the units."""


def task_for(name: TaskName) -> Task:
    module, _, cls = TASKS[TaskName(name)].partition(":")
    return getattr(importlib.import_module(module), cls)()
