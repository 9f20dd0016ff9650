#!/bin/bash
# Worker A of the verdict run (from 2026-12-04 23:00 UTC): e-prop from the worktree at branch verdict-eprop (3c0f1fc:
# 70f95e2 with e-prop's compiled block loop backported; the same configs, so the same cell hashes; the search spaces
# read from the 70f95e2 worktree so that the studies' hashes are the other worker's), then the LSTM at 70f95e2.
# Resume with the same command: bash results/fsdd_verdict/run-A.sh <log suffix>
OUT=/work/main/results/fsdd_verdict
export OMP_NUM_THREADS=1
cd /work/run-verdict-eprop && python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[tune-eprop,tuned-eprop-*,loso-eprop-*]" benchmark.tuning.space_dir=/work/run-verdict/spikebench/sweeps/spaces
# (from 2026-12-05: the LSTM's left-out speakers and its seed 4; its seeds 1-3 run after ParaLIF in the second core,
# results/run-core-B.sh, so that the two cores finish at about the same time)
cd /work/run-verdict && python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[loso-lstm-*,tuned-lstm-h256-rec-s4]"
