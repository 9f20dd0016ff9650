#!/bin/bash
# The first core's queue (from 2026-12-05), each step resumable: rerun this script after a stop.
#   setsid nohup bash results/run-core-A.sh > results/console-core-A-<n>.log 2>&1 < /dev/null &
# 1. issue 24's small runs (conversion curve, STDP at three sizes) and 2. issue 25's shared-setting table, both from
# the worktree /work/run-24 at commit 47eea95 (git worktree add /work/run-24 47eea95); 3. the verdict's worker A
# (results/fsdd_verdict/run-A.sh: the LSTM's remaining cells at 70f95e2). Steps 1–2 use the slack of the verdict's
# first core: its LSTM cells take about half the time of the second core's ParaLIF cells (results/fsdd_verdict/README.md).
cd /work/main
bash results/fsdd_families/run-side.sh >> results/fsdd_families/console-side.log 2>&1
mkdir -p results/fsdd_additions
(cd /work/run-24 && OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_additions \
   "benchmark.phases=[table]" benchmark.out_dir=/work/main/results/fsdd_additions) >> results/fsdd_additions/console.log 2>&1
echo "$(date -u '+%Y-%m-%d %H:%M:%S') worker A (re)started by results/run-core-A.sh" >> results/fsdd_verdict/pauses.log
exec bash results/fsdd_verdict/run-A.sh >> results/fsdd_verdict/console-A.log 2>&1
