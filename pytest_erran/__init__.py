"""pytest-erran: regression-test vision models per error bucket."""


def __getattr__(name):
    # Resolved lazily: reading package metadata costs milliseconds at every pytest start.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-erran")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0"
    raise AttributeError(name)


__all__ = ["__version__"]
