from .command import __doc__, benchmark, main  # noqa: F401  (python -m sweeps.benchmark: __main__.py)
