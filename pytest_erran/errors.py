"""The one exception the core raises for a user's mistake.

The plugin turns it into a pytest usage error (exit 4) so that CI can tell a broken
pipeline from a model that failed its gate (exit 1). The message must name the file,
row, key or value at fault and say what to do.
"""


class ErranError(Exception):
    """Bad input: config, data, model, predictions or baseline."""
