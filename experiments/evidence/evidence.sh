#!/usr/bin/env bash
# The evidence experiment (experiments/evidence/README.md): a from-scratch
# Qwen2.5-VL-architecture model trained through DrawSpatial-v0 on the counting suite, one
# command per stage, run from the repository root. Outputs go to runs/evidence (git ignores
# runs/). Stages, in order:
#
#   bash experiments/evidence/evidence.sh data             # 500 oracle trajectories: the
#                                                          # tokenizer's text
#   bash experiments/evidence/evidence.sh init             # tokenizer + random weights
#                                                          # (configs/model.toml)
#   bash experiments/evidence/evidence.sh sft              # cold-start SFT on streamed oracle
#                                                          # episodes (configs/sft.toml, or
#                                                          # SFT_CONFIG: configs/sft_448.toml
#                                                          # for run G)
#   bash experiments/evidence/evidence.sh rl ARM SEED      # ARM: grpo, ap_grpo or grpo_snra
#                                                          # (configs/ARM.toml)
#   bash experiments/evidence/evidence.sh eval MODEL NAME  # held-out test: 200 items, greedy
#                                                          # (more `drawenv eval` options after
#                                                          # NAME, e.g. --temperature 0.7)
#   bash experiments/evidence/evidence.sh valid MODEL NAME # validation items (model
#                                                          # selection), greedy
#   bash experiments/evidence/evidence.sh baselines        # scripted agents on the same
#                                                          # held-out items (CPU)
#   bash experiments/evidence/evidence.sh report           # tables and plots from every run
#
# The configs named are in experiments/evidence/configs/ (SFT_CONFIG takes a path from the
# repository root). Extra key=value arguments after `sft` and `rl ARM SEED` override the config
# file.
set -euo pipefail
source "$(dirname "$0")/start.sh" "$@"
TASK=(--task counting --difficulty 1)
# 448x448 scenes shown at 224x224; MAX_PIXELS=200704 shows them whole (run G and the RL from it)
SUITE=("${TASK[@]}" --max-pixels "${MAX_PIXELS:-50176}")
# The first seeds of drawenv's seed ranges (drawenv/tasks/seeds.py):
TEST_SEED=1000000   # SEED_RANGES["test"]: held-out test items, reset seeds 1000000..1000199
VALID_SEED=2000000  # SEED_RANGES["validation"]: validation items, reset seeds 2000000..2000199
# Training never uses these: the tokenizer's text comes from seeds 0..N-1, streamed SFT episodes
# from 10000000 up (SEED_RANGES["stream"]), RL items from random seeds of 31 bits.
TEST_N=${TEST_N:-200}

stage=$1
shift
case "$stage" in
  data)
    n=${N:-500}
    shards=${SHARDS:-$(nproc)}
    mkdir -p "$RUNS/data"
    per=$(( (n + shards - 1) / shards ))
    pids=()
    for ((k = 0; k < shards; k++)); do
      first=$((k * per))
      count=$(( first + per > n ? n - first : per ))
      (( count > 0 )) || continue
      # always at 224x224, whatever MAX_PIXELS says, so that every run shares one tokenizer
      drawenv export-sft "${TASK[@]}" --max-pixels 50176 -n "$count" --seed "$first" \
        --corrections 0.5 --out "$RUNS/data/part$k.jsonl" >/dev/null &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done  # fails if any shard failed
    cat "$RUNS"/data/part*.jsonl >"$RUNS/data/sft.jsonl"
    echo "wrote $(wc -l <"$RUNS/data/sft.jsonl") trajectories to $RUNS/data/sft.jsonl"
    ;;
  init)
    drawenv train init --config "$HERE/configs/model.toml" "$@"
    ;;
  sft)
    drawenv train sft --config "${SFT_CONFIG:-$HERE/configs/sft.toml}" "$@"
    ;;
  rl)
    arm=${1:?"rl needs ARM (grpo, ap_grpo or grpo_snra) and SEED"}
    seed=${2:?"rl needs SEED"}
    shift 2
    drawenv train grpo --config "$HERE/configs/$arm.toml" "seed=$seed" \
      "output_dir=$RUNS/$arm-s$seed" "$@"
    ;;
  eval | valid)
    model=${1:?"$stage needs MODEL (a model folder) and NAME"}
    name=${2:?"$stage needs NAME"}
    seed=$TEST_SEED out=$RUNS/eval/$name
    [[ $stage == valid ]] && seed=$VALID_SEED out=$RUNS/eval/valid-$name
    drawenv eval --agent vlm --model "$model" --device "${DEVICE:-cuda}" "${SUITE[@]}" \
      --max-turns 4 --batch-size 100 -n "$TEST_N" --seed "$seed" --out "$out" "${@:3}"
    ;;
  baselines)
    for agent in answer_only random heuristic oracle; do
      drawenv eval --agent "$agent" "${SUITE[@]}" --max-turns 4 -n "$TEST_N" --seed "$TEST_SEED" \
        --out "$RUNS/eval/$agent"
    done
    ;;
  report)
    python "$HERE/report.py" "$RUNS" "$@"
    ;;
  *)
    echo "unknown stage '$stage': use data, init, sft, rl, eval, valid, baselines or report" >&2
    exit 2
    ;;
esac
