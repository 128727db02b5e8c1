"""The prediction progress line, through pytest's terminal reporter (glue: the pipeline only
calls a plain `progress(done, total)`).

On an interactive terminal one line is rewritten in place and erased at the end. In a CI log
nothing is written, unless -v: then one line every ten seconds at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REDRAW_S = 0.1  # an interactive line is redrawn at most this often
LOG_EVERY_S = 10.0  # a non-interactive log gets a line at most this often (with -v)


class ProgressLine:
    def __init__(self, reporter, *, interactive: bool, verbose: int,
                 clock: Callable[[], float] = time.monotonic):
        self.reporter = reporter
        self.interactive = interactive
        self.verbose = verbose
        self.clock = clock
        self.started: float | None = None
        self.last: float | None = None
        self.drawn = False

    @classmethod
    def for_config(cls, config) -> "ProgressLine | None":
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return None
        interactive = bool(getattr(reporter, "isatty", False))
        if not interactive and config.option.verbose <= 0:
            return None
        return cls(reporter, interactive=interactive, verbose=config.option.verbose)

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self.started is None or done == 0:
            self.started, self.last = now, now
            return
        if self.interactive:
            if now - self.last >= REDRAW_S or done == total:
                self.reporter.rewrite(self.text(done, total, now), erase=True)
                self.drawn, self.last = True, now
        elif now - self.last >= LOG_EVERY_S:
            self.reporter.write_line(self.text(done, total, now))
            self.last = now

    def text(self, done: int, total: int, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else float("inf")
        return f"erran: predicting {done}/{total} images, {rate:.0f} img/s, {_duration(left)} left"

    def close(self) -> None:
        """Erase the interactive line, so the next output starts on a clean one."""
        if self.drawn:
            self.reporter.rewrite("", erase=True)
            self.reporter.rewrite("")
            self.drawn = False


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s"
