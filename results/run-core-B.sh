#!/bin/bash
# The second core's queue (from 2026-12-05), resumable: rerun this script after a stop.
#   setsid nohup bash results/run-core-B.sh > results/console-core-B-<n>.log 2>&1 < /dev/null &
# The verdict's worker B: ParaLIF's study and cells, then the LSTM's seeds 1–3, all at 70f95e2 from the worktree
# /work/run-verdict (git worktree add --detach /work/run-verdict 70f95e2). Its seed 4 runs in the first core after the
# LSTM's left-out speakers (results/fsdd_verdict/run-A.sh), so that the two cores finish at about the same time; the
# two workers name disjoint cells (the runner has no lock). The body is one function, read before it runs.
main() {
  local OUT=/work/main/results/fsdd_verdict
  export OMP_NUM_THREADS=1
  cd /work/run-verdict || exit 1
  python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[tune-paralif,tuned-paralif-*,loso-paralif-*]" >> $OUT/console-B.log 2>&1
  python -m spikebench.sweeps.benchmark benchmark=fsdd_verdict benchmark.out_dir=$OUT "benchmark.only=[tuned-lstm-h256-rec-s1,tuned-lstm-h256-rec-s2,tuned-lstm-h256-rec-s3]" >> $OUT/console-B.log 2>&1
  cd /work/main && bash results/run-next-B.sh   # then issue 24's architecture study (results/run-next-B.sh)
}
main "$@"; exit
