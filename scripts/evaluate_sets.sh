#!/usr/bin/env bash
# Table 1 rows on extra test sets, one `python -m lapsrn_jax.evaluate` run per (model, set), each
# writing results/evaluate/<tag>_<set>.json when that set is finished (write to .part, then move).
# Running it again skips every finished (model, set) and resumes the unfinished one at its first
# unscored image (evaluate --resume).
#
#   usage: scripts/evaluate_sets.sh SETS [OUT_DIR]     e.g. scripts/evaluate_sets.sh Urban100,Manga109
#   needs LAPSRN_DATA_DIR (the sets) and LAPSRN_WEIGHTS_DIR (LapSRN_x{2,4,8}.mat, MSLapSRN_D5R8.mat).
#   Rows: Bicubic (x2/x4/x8), LapSRN (the x2, x4, x8 networks, each at its own scale), MS-LapSRN D5R8.
set -u
if [ $# -lt 1 ]; then sed -n 2,10p "$0"; exit 2; fi
sets=$1 out=${2:-results/evaluate}
python=${PYTHON:-python3}
mkdir -p "$out"
status=0
run() {  # tag model scales set
  local tag=$1 model=$2 scales=$3 set=$4
  local dst="$out/${tag}_$(echo "$set" | tr '[:upper:]' '[:lower:]').json"
  [ -e "$dst" ] && { echo "done: $dst"; return; }
  echo "running: $model on $set x$scales -> $dst"
  "$python" -m lapsrn_jax.evaluate --model "$model" --data-dir "$LAPSRN_DATA_DIR" --sets "$set" \
    --scales "$scales" --no-progress --output "$dst.part" --resume && mv "$dst.part" "$dst" || status=1
}
IFS=, read -r -a set_list <<<"$sets"
for set in "${set_list[@]}"; do run bicubic bicubic 2,4,8 "$set"; done
for set in "${set_list[@]}"; do
  for s in 2 4 8; do run "lapsrn_x$s" "official:LapSRN_x$s" "$s" "$set"; done
done
for set in "${set_list[@]}"; do run ms_d5r8 official:MSLapSRN_D5R8 2,4,8 "$set"; done
exit $status
