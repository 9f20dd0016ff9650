#!/bin/bash
# After the verdict, the second core: issue 24's architecture study (benchmark=fsdd_architecture: EventProp and BPTT
# at their verdict-tuned settings, hidden 64…1024 × feed-forward/recurrent, 2 seeds, test file and left-out speaker
# 1), from the worktree /work/run-next at 03a43c1. Resumable: rerun after a stop.
#   setsid nohup bash results/run-next-B.sh > results/console-next-B-<n>.log 2>&1 < /dev/null &
# When every cell is done, the final report from /work/run-arch-report (05c9b68; see results/fsdd_architecture/README.md).
# Then issue 25's EventProp rows (benchmark=fsdd_additions "benchmark.only=['*eventprop*']": eventprop and
# eventprop_delays studies, retraining, left-out speakers), while the first core runs the BPTT rows (run-next-A.sh).
# The body is one function, read whole before it runs.
main() {
  mkdir -p /work/main/results/fsdd_architecture
  cd /work/run-next || exit 1
  if OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_architecture \
    benchmark.out_dir=/work/main/results/fsdd_architecture >> /work/main/results/fsdd_architecture/console.log 2>&1; then
    # every cell done: the final report (bootstrap tables, costs, figure) by the report code of 05c9b68, which
    # composes the same cells (same config hashes), so it reruns none (git worktree add --detach /work/run-arch-report 05c9b68)
    (cd /work/run-arch-report && OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_architecture \
      "benchmark.only=['bptt-h64-ff-s0']" benchmark.out_dir=/work/main/results/fsdd_architecture \
      >> /work/main/results/fsdd_architecture/console.log 2>&1)
  fi
  OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_additions "benchmark.only=['*eventprop*']" \
    benchmark.out_dir=/work/main/results/fsdd_additions >> /work/main/results/fsdd_additions/console-eventprop.log 2>&1
}
main "$@"; exit
