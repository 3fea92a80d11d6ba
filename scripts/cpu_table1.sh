#!/usr/bin/env bash
# Table 1 on a CPU, end to end and resumable: trains CMS-LapSRN (1st, 3rd, 5th conv) from the
# official MS-LapSRN D5R8 with the `:cpu` recipe for BUDGET_HOURS of the machine each
# (scripts/cpu_budget_train.py), writes each training's curve and CPU ledger to CURVES_DIR (e.g.
# conv3.json, from `cpu_budget_train.py --report --json`: small, committed, so the curve outlives
# the git-ignored run folder), and evaluates every row on the five test sets
# (scripts/evaluate_sets.sh): per-set JSON in OUT_DIR, e.g. cms_cpu_conv3_urban100.json.
# Stopped at any moment, the same command goes on where it stopped (finished trainings and sets
# are skipped, an unfinished set resumes at its first unscored image). A tie whose Set5 JSON is
# already in OUT_DIR is scored on Set5 again after its training: if its run folder was lost and
# the tie trained again, and the new checkpoint does not reproduce every Set5 PSNR bit for bit
# (scripts/per_image_gains.py --same), all of the tie's JSON and journals move to
# OUT_DIR/superseded/<UTC time>/ and every set is scored again, so no row mixes two checkpoints.
#
#   usage: scripts/cpu_table1.sh [RUNS_DIR [OUT_DIR]]     (default workdirs, results/evaluate)
#          from the repository root (the configs are named relative to it)
#   env:   LAPSRN_DATA_DIR (Set5 ... Manga109 and the training sets), LAPSRN_WEIGHTS_DIR,
#          BUDGET_HOURS (3), CORES (2), TIES ("3 1 5": the order they are trained and evaluated in),
#          CURVES_DIR (OUT_DIR/../cpu_recipe), STEPS (unset: train for the budget; N: stop at step N,
#          within the budget, e.g. to re-create a scored checkpoint whose run folder was lost:
#          TIES=3 STEPS=5000 BUDGET_HOURS=3.5 re-creates `cms_conv3_cpu@5000`, checked as below),
#          TRAIN_FLAGS (more `--config.*` flags for the training, e.g. `--config.eval.every=0
#          --config.eval.at_start=False`: validate only at the end; the weights do not change)
#   Table 1's CMS rows: TIES=5 (then 3, then 1) STEPS=2500 TRAIN_FLAGS="--config.eval.every=0
#          --config.eval.at_start=False": a training that fits one working session (RESULTS.md)
#   time:  on the idle 2-core EPYC, ~3.5 h of training per tie to step 5,000 (5.1 CPU-hours;
#          to step 2,500 without validations ~1.8 h: stage 1 8 min, ~2.5 s a step), then
#          per model Set5 + Set14 + BSDS100 ~10 min and Manga109 ~50 min (8-11 s per image and
#          scale); Urban100 ~33 min alone (1.8 h beside another training at nice 19).
set -eu
runs=${1:-workdirs} out=${2:-results/evaluate}
budget=${BUDGET_HOURS:-3} cores=${CORES:-2} ties=${TIES:-3 1 5}
steps=${STEPS:+--config.train.num_steps=$STEPS}
python=${PYTHON:-python3}
curves=${CURVES_DIR:-$(dirname "$out")/cpu_recipe}
here=$(cd "$(dirname "$0")" && pwd)
small=Set5,Set14,BSDS100 large=Urban100,Manga109
for tie in $ties; do
  "$python" "$here/cpu_budget_train.py" --config "configs/cms_lapsrn_d5r8_conv$tie.py:cpu" \
    --workdir "$runs/cms_conv${tie}_cpu" --budget-hours "$budget" --cores "$cores" \
    --config.train.progress_bar=False $steps ${TRAIN_FLAGS:-}
  mkdir -p "$curves"
  "$python" "$here/cpu_budget_train.py" --workdir "$runs/cms_conv${tie}_cpu" --report \
    --json "$curves/conv$tie.json"
  if [ -e "$out/cms_cpu_conv${tie}_set5.json" ]; then
    again=$(mktemp -d)
    PYTHON=$python "$here/evaluate_sets.sh" Set5 "$again" "cms_cpu_conv$tie=$runs/cms_conv${tie}_cpu"
    if ! "$python" "$here/per_image_gains.py" --same "$out/cms_cpu_conv${tie}_set5.json" \
        "$again/cms_cpu_conv${tie}_set5.json"; then
      old="$out/superseded/$(date -u +%Y%m%dT%H%M%SZ)"
      mkdir -p "$old"
      mv "$out"/cms_cpu_conv"$tie"_* "$old"/
      echo "cms_cpu_conv$tie: another checkpoint than the one scored; its results moved to $old"
    fi
    rm -rf "$again"
  fi
  PYTHON=$python "$here/evaluate_sets.sh" "$small" "$out" "cms_cpu_conv$tie=$runs/cms_conv${tie}_cpu"
done
PYTHON=$python "$here/evaluate_sets.sh" "$large" "$out"  # the official rows
for tie in $ties; do
  PYTHON=$python "$here/evaluate_sets.sh" "$large" "$out" "cms_cpu_conv$tie=$runs/cms_conv${tie}_cpu"
done
