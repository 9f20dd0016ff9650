#!/bin/bash
# After the verdict, the second core: issue 24's architecture study (benchmark=fsdd_architecture: EventProp and BPTT
# at their verdict-tuned settings, hidden 64…1024 × feed-forward/recurrent, 2 seeds, test file and left-out speaker
# 1), from the worktree /work/run-next at 03a43c1. Resumable: rerun after a stop.
#   setsid nohup bash results/run-next-B.sh > results/console-next-B-<n>.log 2>&1 < /dev/null &
# When every cell is done, the final report from /work/run-arch-report (05c9b68; see results/fsdd_architecture/README.md).
# Then issue 25's EventProp rows (benchmark=fsdd_additions "benchmark.only=['*eventprop*']": eventprop and
# eventprop_delays studies, retraining, left-out speakers), while the first core runs the BPTT rows (run-next-A.sh).
# The architecture study ended on 2026-12-06 04:40 UTC (80 of 80 cells, final report by 05c9b68). From 04:41 the
# worktree /work/run-next is at e62c19e (a retried study trial continues its dead trial's run; every finished cell's
# config hash checked equal), and this core runs the EventProp rows only.
# The body is one function, read whole before it runs.
main() {
  cd /work/run-next || exit 1
  OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_additions "benchmark.only=['*eventprop*']" \
    benchmark.out_dir=/work/main/results/fsdd_additions >> /work/main/results/fsdd_additions/console-eventprop.log 2>&1
}
main "$@"; exit
