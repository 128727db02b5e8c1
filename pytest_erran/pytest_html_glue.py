"""pytest-html's report gains the erran verdict, the bucket table and a link to the gallery.

Registered only when the pytest-html plugin is loaded, so its hooks are known: without it this
module is never imported, and nothing depends on it.
"""

from __future__ import annotations

import os
from pathlib import Path


class PytestHtmlHooks:
    def __init__(self, state):
        self.state = state

    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        state = self.state
        if state.is_worker or state.evaluation is None:
            return
        from .report.html import summary_fragment

        link = None
        if state.settings.html is not None and state.settings.html.exists():
            report = getattr(session.config.option, "htmlpath", None)
            base = Path(os.path.expandvars(report)).expanduser().absolute().parent if report else Path.cwd()
            link = Path(os.path.relpath(state.settings.html, base)).as_posix()
        prefix.append(summary_fragment(state.evaluation, link))
