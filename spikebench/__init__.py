"""spikebench: train spiking neural networks on spoken digits and compare training algorithms side by side.

Packages: `spikebench.configs` (the config schema and files), `spikebench.datamodules` (SHD-format data),
`spikebench.algorithms` (the network and the training algorithms), `spikebench.sweeps` (hyperparameter search, the
benchmark, diagnostics); modules `spikebench.train`, `.evaluate`, `.predict`, `.export` (the commands).
"""
