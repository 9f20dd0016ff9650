"""Studies over train.py: Optuna hyperparameter optimisation (`python -m spikebench.sweeps.optimize`), W&B sweep files, benchmarks."""
