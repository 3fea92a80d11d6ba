#!/usr/bin/env bash
# Table 1 rows on test sets, one `python -m lapsrn_jax.evaluate` run per (row, set), each writing
# OUT_DIR/<tag>_<set>.json when that set is finished (write to .part, then move). Running it again
# skips every finished (row, set) and resumes the unfinished one at its first unscored image
# (evaluate --resume).
#
#   usage: scripts/evaluate_sets.sh SETS [OUT_DIR [TAG=MODEL ...]]
#     e.g. scripts/evaluate_sets.sh Urban100,Manga109
#          scripts/evaluate_sets.sh Set5,Urban100 results/evaluate cms_cpu_conv3=workdirs/cms_conv3_cpu
#   needs LAPSRN_DATA_DIR (the sets) and LAPSRN_WEIGHTS_DIR (LapSRN_x{2,4,8}.mat, MSLapSRN_D5R8.mat).
#   Rows: without TAG=MODEL, Bicubic (x2/x4/x8), LapSRN (the x2, x4, x8 networks, each at its own
#   scale) and MS-LapSRN D5R8; with them, only those models (any evaluate --model), at x2/x4/x8.
set -u
if [ $# -lt 1 ]; then sed -n 2,13p "$0"; exit 2; fi
sets=$1 out=${2:-results/evaluate}
shift $(( $# < 2 ? $# : 2 ))
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
if [ $# -gt 0 ]; then
  for row in "$@"; do
    case $row in *=?*) ;; *) echo "error: a row is TAG=MODEL, got '$row'" >&2; exit 2;; esac
    for set in "${set_list[@]}"; do run "${row%%=*}" "${row#*=}" 2,4,8 "$set"; done
  done
  exit $status
fi
for set in "${set_list[@]}"; do run bicubic bicubic 2,4,8 "$set"; done
for set in "${set_list[@]}"; do
  for s in 2 4 8; do run "lapsrn_x$s" "official:LapSRN_x$s" "$s" "$set"; done
done
for set in "${set_list[@]}"; do run ms_d5r8 official:MSLapSRN_D5R8 2,4,8 "$set"; done
exit $status
