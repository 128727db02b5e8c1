"""Hooks a project implements in its conftest.py to extend pytest-erran without a fork.

Both are called once per run (output adapters before the model runs; unit columns before the
buckets are built, which is after the model runs when image properties are measured in its decode
threads); what they return goes to the pipeline as plain Python (the core has no pytest in it), so `pytest_erran.evaluate()` takes the same
extensions as keyword arguments.
"""

import pytest


@pytest.hookspec
def pytest_erran_output_adapters(task):
    """Output adapters for models whose outputs no built-in adapter reads.

    Return a dict {name: adapter}; `output = "<name>"` in the config selects one. An adapter is
    called once per batch as ``adapter(outputs, options)``: `outputs` maps the model's output
    names to arrays, `options` is a :class:`pytest_erran.AdapterOptions` (classes, the model
    input's size — None when each image is fed at its own size —, score threshold, NMS IoU). It returns, for ``task == "detection"``, one
    ``(boxes [k, 4] x1 y1 x2 y2 in model-input pixels, scores [k], labels [k] class indices)``
    per image of the batch; for ``"classification"``, ``[N, C]`` scores or ``[N]`` class indices.

    :param str task: "classification" or "detection": the run's task.
    """


@pytest.hookspec
def pytest_erran_unit_columns(units, images, settings):
    """Columns to add to the units table before buckets are built (a defect's area in mm² from
    the image's pixel size, say), so that a `where` can use them.

    Return a dict {column: one value per unit, in the units' order} (or None). Names must be new
    and must not start with "_".

    :param pandas.DataFrame units: a copy of the units table (one row per image or object).
    :param pandas.DataFrame images: a copy of the images table.
    :param settings: the run's settings (`settings.task`, `settings.classes`, ...).
    """
