"""Measurement and self-check scripts, each run as `python -m spikebench.sweeps.diagnostics.<name>`: the cost benchmarks of
single algorithms (bench_*), the GPU check of the Triton kernels (gpu_check), the kernel self-check against the
reference loops (kernel_check), EventProp's discrete-vs-exact gradient comparison (eventprop_modes), the learning
curves of finished runs (learning_curves), the best trials of studies (study_trials), and the small networks that
these scripts and the tests share (networks). They import the suite's packages; nothing imports them but the tests."""
