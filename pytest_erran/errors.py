"""The exception the core raises for a user's mistake, and the plugin's warning category.

The plugin turns ErranError into a pytest usage error (exit 4) so that CI can tell a broken
pipeline from a model that failed its gate (exit 1). The message must name the file,
row, key or value at fault and say what to do.
"""

from contextlib import contextmanager


class ErranError(Exception):
    """Bad input: config, data, model, predictions or baseline."""


@contextmanager
def prefixed(prefix: str):
    """ErranErrors raised inside start with `prefix`: the file or config entry they are about."""
    try:
        yield
    except ErranError as e:
        raise ErranError(f"{prefix}: {e}") from None


class ErranWarning(UserWarning):
    """A requirement that passed but should be looked at (inconclusive drop, too-small bucket).

    Documented so that a project can choose with its warning filters: under
    `filterwarnings = error` the requirement fails with its one-line message (never a
    traceback); `ignore::pytest_erran.ErranWarning` lets it pass quietly.
    """
