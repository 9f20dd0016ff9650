from .command import __doc__, benchmark, main  # noqa: F401  (python -m spikebench.sweeps.benchmark: __main__.py)
