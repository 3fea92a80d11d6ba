#!/usr/bin/env bash
# The CMS-LapSRN runs of RESULTS.md, all at once on one machine (one accelerator shared by the
# processes): the fine-tuning recipe for conv1 / conv3 / conv5, the official SGD schedule for conv3,
# and the five conv3 ablations (shorter budget). Each run is `python -m lapsrn_jax.train` with a
# wall-clock budget (train.max_seconds: the training loop, from after stage 1; the first step's
# compilation counts); running this again
# with the same RUNS_DIR resumes every run.
#
#   usage: scripts/cms_finetune_runs.sh RUNS_DIR MAIN_SECONDS ABLATION_SECONDS [--config.x=y ...]
#   needs LAPSRN_DATA_DIR (T91, BSDS200, BSDS100) and LAPSRN_WEIGHTS_DIR (MSLapSRN_D5R8.mat);
#   on a GPU also export XLA_PYTHON_CLIENT_PREALLOCATE=false (several processes share it).
set -u
if [ $# -lt 3 ]; then sed -n 2,12p "$0"; exit 2; fi
runs=$1 main_s=$2 abl_s=$3
shift 3
mkdir -p "$runs"
python=${PYTHON:-python3}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' TERM INT

launch() {
  local name=$1 cfg=$2 secs=$3 workers=$4
  "$python" -m lapsrn_jax.train --config "$cfg" --workdir "$runs/$name" \
    --config.train.max_seconds="$secs" --config.data.num_workers="$workers" \
    --config.train.progress_bar=false --config.checkpoint.keep=1 "${extra[@]}" \
    >>"$runs/$name.log" 2>&1 &
  pids+=($!)
}
extra=("$@")
for k in 1 3 5; do launch "conv$k" "configs/cms_lapsrn_d5r8_conv$k.py" "$main_s" 2; done
launch conv3_sgd configs/cms_lapsrn_d5r8_conv3.py:sgd "$main_s" 2
for a in rho_fixed_1e-2 rho_fixed_1 rho_inf no_upsampler_kernel_grad pad0; do
  launch "conv3_$a" "configs/cms_lapsrn_d5r8_conv3.py:$a" "$abl_s" 0
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
