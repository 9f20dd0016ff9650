#!/bin/bash
# The second core's queue (from 2026-12-05), resumable: rerun this script after a stop.
#   setsid nohup bash results/run-core-B.sh > results/console-core-B-<n>.log 2>&1 < /dev/null &
# The verdict's worker B: ParaLIF's study and cells, then the LSTM's remaining seeds (tuned-lstm-*), all at 70f95e2
# from the worktree /work/run-verdict (git worktree add --detach /work/run-verdict 70f95e2). The LSTM's seeds moved
# here from worker A, whose core runs issue 24's and 25's shorter runs first (results/run-core-A.sh), so that the two
# cores finish at about the same time.
OUT=/work/main/results/fsdd_verdict
export OMP_NUM_THREADS=1
cd /work/run-verdict
python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[tune-paralif,tuned-paralif-*,loso-paralif-*]" >> $OUT/console-B.log 2>&1
python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[tuned-lstm-*]" >> $OUT/console-B.log 2>&1
