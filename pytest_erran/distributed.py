"""xdist glue, registered only on a controller when xdist is loaded: the controller evaluates
before its workers start and hands them its cache folder, so the model runs once even without
.pytest_cache (-p no:cacheprovider, or a read-only one): the workers read its predictions."""

from __future__ import annotations

import pytest

from .session import SHARED_CACHE


class XdistController:
    def __init__(self, state):
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        if self.state.cache_dir is not None:
            node.workerinput[SHARED_CACHE] = str(self.state.cache_dir)
