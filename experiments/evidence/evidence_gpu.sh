#!/usr/bin/env bash
# The GPU stages of the evidence experiment (experiments/evidence/README.md) on one machine,
# spread over its GPUs (one job a GPU, the rest queued round-robin), run from the repository
# root. Each job is a stage of experiments/evidence/evidence.sh.
#
#   bash experiments/evidence/evidence_gpu.sh sft
#       data, init, cold-start SFT at four learning rates (or SFT_RUNS), each scored on the
#       validation and test items; the best on validation becomes runs/evidence/sft/final. With
#       PART, all unfinished runs at once for at most PART seconds, resuming from their
#       checkpoints; run it again on the same machine until every run has finished and been
#       scored
#   bash experiments/evidence/evidence_gpu.sh sft-part
#       one SFT run (configs/sft.toml) that spans device calls: data and init when absent, then
#       SFT for at most PART seconds (default 540), resuming from its latest checkpoint; run it
#       again, on the same machine, until runs/evidence/sft/final exists
#   bash experiments/evidence/evidence_gpu.sh rl
#       grpo, ap_grpo and grpo_snra, seeds 1 and 2, from runs/evidence/sft/final; each final
#       model, the start and (where present) the untrained init scored on the test items. With
#       PART, all unfinished runs at once for at most PART seconds, resuming from their
#       checkpoints, then every finished run not yet scored (leave the call time for it); run it
#       again on the same machine until every run has finished and been scored
#
# SFT_ARGS and RL_ARGS add key=value settings to every SFT or RL job; LRS, ARMS and SEEDS replace
# the learning rates, RL arms and seeds; SFT_RUNS replaces the SFT runs altogether, as
# "NAME:key=value,key=value NAME:..." (run NAME goes to runs/evidence/sft-NAME; the default is
# one run a learning rate, "lr3e-4:lr=3e-4 ..."); GPUS sets how many GPUs to use and PER_GPU how
# many jobs share one.
#
# Then `pack PHASE [MODEL]` writes what the notebook (experiments/evidence/NOTEBOOK.md) needs
# (metrics, configs, evaluation records; with MODEL also runs/evidence/MODEL/final in bfloat16)
# as tar files of at most 15 MB under $OUT. The configs named are in
# experiments/evidence/configs/.
set -euo pipefail
source "$(dirname "$0")/start.sh" "$@"
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
OUT=${OUT:-$RUNS/out}
LRS=(${LRS:-3e-4 6e-4 1e-3 2e-3})
ARMS=(${ARMS:-grpo ap_grpo grpo_snra})
SEEDS=(${SEEDS:-1 2})
read -ra SFT_RUNS <<<"${SFT_RUNS:-$(for lr in "${LRS[@]}"; do printf 'lr%s:lr=%s ' "$lr" "$lr"; done)}"

# run_jobs LOGDIR JOB...: each JOB is a command line (of evidence.sh arguments). There are
# GPUS * PER_GPU slots; job i runs in slot i % slots, on GPU slot % GPUS, the jobs of one slot
# one after another, all slots at once, each with its share of the CPU threads. With
# JOB_TIMEOUT, a job still running after that many seconds is stopped, which is no failure (the
# trainers resume from their checkpoints). Fails if any job fails.
run_jobs() {
  local logs=$1; shift
  local jobs=("$@") pids=() slot
  local slots=$((GPUS * ${PER_GPU:-1}))
  mkdir -p "$logs"
  for ((slot = 0; slot < slots && slot < ${#jobs[@]}; slot++)); do
    (
      export CUDA_VISIBLE_DEVICES=$((slot % GPUS))
      export OMP_NUM_THREADS=$(( $(nproc) / slots > 0 ? $(nproc) / slots : 1 ))
      for ((i = slot; i < ${#jobs[@]}; i += slots)); do
        timeout "${JOB_TIMEOUT:-0}" bash "$HERE/evidence.sh" ${jobs[i]} >>"$logs/job$i.log" 2>&1 \
          || (( $? == 124 )) || { tail -20 "$logs/job$i.log"; exit 1; }
      done
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

all_at_once() {  # PER_GPU that gives each of N jobs a slot of its own: all_at_once N
  echo "${PER_GPU:-$(( ($1 + GPUS - 1) / GPUS ))}"
}

run_part() {  # run_jobs, or with PART every job at once, each stopped after PART seconds
  local logs=$1; shift
  if [[ -n ${PART:-} ]]; then
    PER_GPU=$(all_at_once $#) JOB_TIMEOUT=$PART run_jobs "$logs" "$@"
  else
    run_jobs "$logs" "$@"
  fi
}

unfinished() {  # unfinished PHASE RUN...: true (and packs PHASE-part) if a RUN has no final model
  local phase=$1 run; shift
  for run in "$@"; do
    if [[ ! -d $RUNS/$run/final ]]; then
      echo "$run has not finished: run this phase again on the same machine"
      pack "$phase-part"
      return 0
    fi
  done
  return 1
}

best_sft() {  # best_sft RUN...: the one with the highest validation accuracy (MRA), ties to the first
  python3 - "$RUNS" "$@" <<'PY'
import json, sys
runs, names = sys.argv[1], sys.argv[2:]
def score(name):
    rows = [json.loads(l) for l in open(f"{runs}/eval/valid-{name}/results.jsonl")]
    return sum(r["accuracy"] for r in rows) / len(rows)
print(max(names, key=score))
PY
}

pack() {  # pack PHASE [MODEL [SRC]]: with MODEL, also SRC (default $RUNS/MODEL/final) in bfloat16
  local model=${2:-} src=${3:-$RUNS/${2:-}/final}
  mkdir -p "$OUT"
  find "$RUNS" -path "$RUNS/out" -prune -o \( -name metrics.jsonl -o -name config.toml \
    -o -name init.toml -o -name results.jsonl -o -name '*.log' \) -print \
    | tar czf "$OUT/results-$1.tgz" -T -
  if [[ -n $model ]]; then  # the model, weights in bfloat16, in 15 MB parts
    python3 - "$src" "$RUNS/${model}_bf16" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(src, dst, dirs_exist_ok=True)
for f in dst.glob("*.safetensors"):
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(f).items()}, f, {"format": "pt"})
PY
    tar czf - -C "$RUNS" "${model}_bf16" | split -b 15M - "$OUT/$model-model.tgz.part-"
  fi
  ls -la "$OUT"
}

case $1 in
  sft)
    [[ -s $RUNS/data/sft.jsonl ]] || bash "$HERE/evidence.sh" data
    [[ -f $RUNS/init/model.safetensors ]] || bash "$HERE/evidence.sh" init
    jobs=() runs=()
    for spec in "${SFT_RUNS[@]}"; do
      run=sft-${spec%%:*} args=${spec#*:}
      runs+=("$run")
      [[ -d $RUNS/$run/final ]] \
        || jobs+=("sft output_dir=$RUNS/$run resume=true ${SFT_ARGS:-} ${args//,/ }")
    done
    run_part "$RUNS/logs/sft" "${jobs[@]}"
    unfinished sft "${runs[@]}" && exit 0
    jobs=()
    for run in "${runs[@]}"; do
      jobs+=("valid $RUNS/$run/final $run" "eval $RUNS/$run/final $run")
    done
    PER_GPU=$(all_at_once ${#jobs[@]}) run_jobs "$RUNS/logs/sft-eval" "${jobs[@]}"
    run=$(best_sft "${runs[@]}")
    echo "best on validation: $run"
    rm -rf "$RUNS/sft" && cp -r "$RUNS/$run" "$RUNS/sft"
    pack sft sft
    ;;
  sft-part)
    [[ -s $RUNS/data/sft.jsonl ]] || bash "$HERE/evidence.sh" data
    [[ -f $RUNS/init/model.safetensors ]] || bash "$HERE/evidence.sh" init
    mkdir -p "$RUNS/logs"
    resume=false
    compgen -G "$RUNS/sft/checkpoint-*" >/dev/null && resume=true
    status=0
    [[ -d $RUNS/sft/final ]] || timeout "${PART:-540}" bash "$HERE/evidence.sh" sft \
      "resume=$resume" ${SFT_ARGS:-} >>"$RUNS/logs/sft.log" 2>&1 || status=$?
    tail -5 "$RUNS/logs/sft.log"
    (( status == 0 || status == 124 )) || exit "$status"
    if [[ -d $RUNS/sft/final ]]; then
      pack sft sft
    else  # a fallback should the machine be lost: the latest checkpoint's weights
      latest=$(ls -d "$RUNS"/sft/checkpoint-* | sort -t- -k2 -n | tail -1)
      pack sft sft "$latest/model"
    fi
    ;;
  rl)
    start=${START:-sft}  # the folder of the RL arms' starting model (their configs' `model`)
    if [[ ! -d $RUNS/$start/final ]]; then  # a fresh machine: the packed model, carried here
      mkdir -p "$RUNS/$start" && cp -r "$RUNS/${start}_bf16" "$RUNS/$start/final"
    fi
    jobs=() runs=()
    for arm in "${ARMS[@]}"; do
      for seed in "${SEEDS[@]}"; do
        runs+=("$arm-s$seed")
        [[ -d $RUNS/$arm-s$seed/final ]] || jobs+=("rl $arm $seed resume=true ${RL_ARGS:-}")
      done
    done
    run_part "$RUNS/logs/rl" "${jobs[@]}"
    # Score, in this same call, every model saved since it was last scored: the start, the
    # untrained init where this machine has it (a fresh one is given only the start) and each
    # finished run, so that a run still going holds back no one's score.
    jobs=()
    for name in "$start" init "${runs[@]}"; do
      model=$RUNS/$name/final
      [[ $name == init ]] && model=$RUNS/init
      [[ -d $model && ! $RUNS/eval/$name/results.jsonl -nt $model ]] \
        && jobs+=("eval $model $name")
    done
    PER_GPU=$(all_at_once ${#jobs[@]}) run_jobs "$RUNS/logs/rl-eval" "${jobs[@]}"
    unfinished rl "${runs[@]}" && exit 0
    pack rl
    ;;
  pack)
    pack "${2:?"pack needs a phase name"}" "${3:-}"
    ;;
  *)
    echo "unknown phase '$1': use sft, sft-part, rl or pack" >&2
    exit 2
    ;;
esac
