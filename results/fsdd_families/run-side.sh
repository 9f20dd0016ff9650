#!/bin/bash
# Issue 24's small runs, in worker A's core while the verdict's worker A (the LSTM's cells, which finish hours before
# worker B's ParaLIF) is stopped: from the worktree /work/run-24 at commit 47eea95. Resume with the same command
# (a finished step is skipped: the conversion run's checkpoint, its curve, the benchmark's finished cells).
set -e
export OMP_NUM_THREADS=1
OUT=/work/main/results
cd /work/run-24
# 1. the accuracy–latency curve of ANN-to-SNN conversion: the families table's seed-0 cell trained again with its
#    checkpoints kept (the benchmark keeps none), then converted at 1 … 64 steps per frame
RUN=$OUT/fsdd_families/conversion/run
if [ ! -f $OUT/fsdd_families/conversion/curve.csv ]; then
  if [ ! -f $RUN/results.yaml ]; then   # not finished: start, or continue from the last completed epoch
    RESUME=; [ -f $RUN/checkpoints/last.ckpt ] && RESUME=ckpt_path=$RUN/checkpoints/last.ckpt
    python train.py experiment=fsdd algorithm=ann2snn model.hidden=256 model.recurrent=true seed=0 logger=csv \
      trainer.enable_progress_bar=false output_dir=$RUN $RESUME
  fi
  python -m spikebench.sweeps.benchmark.conversion $RUN --out $OUT/fsdd_families/conversion/curve.csv
fi
# 2. what limits STDP: the rule and Diehl & Cook's competition, two readouts, hidden 64 / 256 / 1024
python -m spikebench.sweeps.benchmark benchmark=fsdd_stdp benchmark.out_dir=$OUT/fsdd_stdp
