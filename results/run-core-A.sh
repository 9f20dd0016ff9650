#!/bin/bash
# The first core's queue (from 2026-12-05), each step resumable: rerun this script after a stop.
#   setsid nohup bash results/run-core-A.sh > results/console-core-A-<n>.log 2>&1 < /dev/null &
# The whole body is one function, read before it runs: bash reads a script as it goes, so editing a running queue
# changed what it ran (2026-12-05: the EventProp run and STDP's adaptive threshold were skipped that way).
# Done before 2026-12-05 10:00 UTC: issue 24's small runs (results/fsdd_families/run-side.sh) and issue 25's
# shared-setting table (results/fsdd_additions), both from /work/run-24 (47eea95).
# 1. the verdict's worker A: the LSTM's left-out speakers and its seed 4 (results/fsdd_verdict/run-A.sh, 70f95e2);
# 2. the verdict's evidence: EventProp's tuned configuration for 120 epochs instead of 60 (seed 0), whether its gap is
#    budget (it was still climbing at epoch 60) or not; at 03a43c1 (git worktree add --detach /work/run-timing
#    03a43c1), whose EventProp step is ≈6× faster than 70f95e2's (results/fsdd_verdict/retiming.md); run first on
#    2026-12-05 with worker A's cell paused (pauses.log);
# 3. STDP with Diehl & Cook's adaptive threshold, a separate benchmark (c332672 added the option; /work/run-24b);
# 4. issue 25's studies, retraining and left-out speakers (results/run-next-A.sh).
# EventProp's tuned configuration (the verdict's seed-0 cell, resolved key by key: only max_epochs and the folder
# differ) for 120 epochs into results/fsdd_verdict/longer/<name>, resumed from its last epoch; $2: extra overrides.
eventprop_120() {
  local L=results/fsdd_verdict/longer/$1 R=
  mkdir -p "$L"
  [ -f $L/results.yaml ] && return
  [ -f $L/checkpoints/last.ckpt ] && R=ckpt_path=/work/main/$L/checkpoints/last.ckpt
  (cd /work/run-timing && OMP_NUM_THREADS=1 python train.py experiment=fsdd test_checkpoint=last algorithm=eventprop \
     logger=csv trainer.enable_progress_bar=false model.hidden=256 model.recurrent=true optim.lr=0.006352196102247068 \
     optim.scheduler=none model.tau_mem=0.0185493365053558 model.tau_syn=0.0016629685297589426 \
     loss.reg_strength=0.00011718644587660482 loss.reg_target=6.1104116024461534 data.augment.shift=35 \
     data.augment.dropout=0.2632950543881133 data.augment.blend_prob=0.17532166444681513 model.threshold=1.528113840724665 \
     loss.reg_form=gradient loss.kind=sum_exp algorithm.silent_lift=0.011455966357365446 data.dt=0.001 \
     model.integration=held trainer.max_epochs=120 seed=0 $2 output_dir=/work/main/$L $R) >> $L.log 2>&1
}
# 2b. the same at each left-out speaker (data.leave_out=k, the loso cells' only difference from the seed-0 cell)
longer_loso() {
  local k
  for k in 0 1 2 3 4; do eventprop_120 loso-eventprop-120ep-spk$k-s0 data.leave_out=$k; done
}
main() {
  cd /work/main || exit 1
  echo "$(date -u '+%Y-%m-%d %H:%M:%S') worker A (re)started by results/run-core-A.sh" >> results/fsdd_verdict/pauses.log
  bash results/fsdd_verdict/run-A.sh >> results/fsdd_verdict/console-A.log 2>&1
  eventprop_120 eventprop-120ep-s0
  longer_loso
  (cd /work/run-24b && OMP_NUM_THREADS=1 python -m spikebench.sweeps.benchmark benchmark=fsdd_stdp_threshold \
     benchmark.out_dir=/work/main/results/fsdd_stdp_threshold) >> results/fsdd_stdp_threshold-console.log 2>&1
  bash results/run-next-A.sh   # 4. then issue 25's studies (results/run-next-A.sh)
}
main "$@"; exit
