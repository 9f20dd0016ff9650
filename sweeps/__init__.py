"""Studies over train.py: Optuna hyperparameter optimisation (`python -m sweeps.optimize`), W&B sweep files, benchmarks."""
