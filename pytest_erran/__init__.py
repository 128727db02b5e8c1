"""pytest-erran: regression-test vision models per error bucket.

As a library (no pytest needed): ``pytest_erran.evaluate(config, model=..., data=...)`` returns
the evaluation the plugin gates on; see api.py.
"""

# Resolved lazily: an installed plugin is imported at every pytest start, used or not, so
# importing this package must cost nothing (no pandas, no onnxruntime, no metadata read).
_LAZY = {
    "evaluate": ("api", "evaluate"),
    "load_settings": ("api", "load_settings"),
    "Evaluation": ("pipeline", "Evaluation"),
    "Settings": ("config", "Settings"),
    "AdapterOptions": ("tasks", "AdapterOptions"),
    "ErranError": ("errors", "ErranError"),
    "ErranWarning": ("errors", "ErranWarning"),
}


def __getattr__(name):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-erran")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0"
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(name)


__all__ = ["__version__", *_LAZY]
