#!/bin/bash
# After the verdict, the first core: issue 25's studies, their 3-seed retraining and left-out-speaker cells
# (benchmark=fsdd_additions, phases tune/tuned/loso; its table phase finished at 47eea95, and its cells' config hashes
# are the same at 03a43c1, so they are kept), from the worktree /work/run-next at 03a43c1
# (git worktree add --detach /work/run-next 03a43c1). Resumable: rerun after a stop.
#   setsid nohup bash results/run-next-A.sh > results/console-next-A-<n>.log 2>&1 < /dev/null &
# From 2026-12-05 19:55 this core runs the BPTT rows only (`benchmark.only=['*bptt*']`: bptt, bptt_delays, bptt_adlif);
# the second core takes the EventProp rows after the architecture study (run-next-B.sh). Selection changes no cell's
# config, so finished cells are kept. When both are done, the plain command (without `only`) writes the final reports.
# From 2026-12-06 00:10 this core first runs issue 24's STDP samples study (benchmark=fsdd_stdp_samples, seven cells of
# hidden 256, ≈ 1 h) from the worktree /work/run-stdp-samples at 3875869 (git worktree add --detach
# /work/run-stdp-samples 3875869), then goes on with the BPTT rows; finished cells are skipped on a rerun.
# From 2026-12-06 04:41 UTC /work/run-next is at e62c19e (git -C /work/run-next checkout --detach e62c19e): a trial left
# unfinished by a stop is continued from its last epoch instead of retrained; every finished cell's config hash is
# the same there (checked), so nothing is rerun.
# From 2026-12-06 ~08:10 UTC (queue B's EventProp rows done, tune-bptt_adlif finished, its first retraining cell
# done) this queue runs the remaining bptt_adlif cells two at a time (`benchmark.workers=2`: both cores; a worker
# count changes no cell's config), so queue B is not restarted.
# The body is one function, read whole before it runs.
main() {
  mkdir -p /work/main/results/fsdd_stdp_samples
  (cd /work/run-stdp-samples && OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_stdp_samples \
    benchmark.out_dir=/work/main/results/fsdd_stdp_samples >> /work/main/results/fsdd_stdp_samples/console.log 2>&1)
  cd /work/run-next || exit 1
  OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_additions "benchmark.only=['*bptt*']" benchmark.workers=2 \
    benchmark.out_dir=/work/main/results/fsdd_additions >> /work/main/results/fsdd_additions/console.log 2>&1
}
main "$@"; exit
