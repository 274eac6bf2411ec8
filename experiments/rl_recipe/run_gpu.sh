#!/usr/bin/env bash
# The RL-recipe study (experiments/rl_recipe/README.md) in one device lease on one GPU, run from
# the repository root, through the evidence study's stages (experiments/evidence/evidence.sh):
#
#   bash experiments/rl_recipe/run_gpu.sh all     # cold start, the RL arms, the test scores
#   bash experiments/rl_recipe/run_gpu.sh pack    # the records and the cold start, under $OUT
#
# `all`: 500 oracle trajectories and the from-scratch model (configs/model.toml of the evidence
# study), cold-start SFT at 224x224 for SFT_STEPS steps (default 1500), then every RL arm of
# ARMS at once on the GPU for RL_SECONDS seconds (default 600) from that start, each saving a
# checkpoint every 5 steps, then the start and each arm's latest checkpoint scored on the
# TEST_N (default 200) held-out test items, greedy and sampled at temperature 0.7. With RL_UNTIL (seconds since the epoch), the
# arms stop then instead, whenever the cold start ended (a lease's time, spent evenly). SFT_ARGS and RL_ARGS add key=value settings
# to every SFT or RL job (a CPU smoke run shrinks the batches with them). Each arm is
# NAME:ARM:key=value,key=value with ARM a config of experiments/evidence/configs/. START (a model
# folder, e.g. a carried bfloat16 cold start) replaces data, init and SFT. After the arms stop,
# and again after the scoring, the records are packed into runs/evidence/packed/ (`pack`'s
# files), so a later call can bring them back even if this one is cut short. With SFT_UNTIL
# (seconds since the epoch), SFT stops then if it has not finished, and its latest checkpoint
# (every 100 steps) is the start. `watch SECONDS` prints, every 30 s for that long (or until
# `all` is done), the SFT step and each arm's last step and batch reward, with `exit RC` for an
# arm that ended other than by time, and appends them to runs/evidence/logs/watch.tsv. An arm
# that fails is named in `all`'s output too.
# `bench` runs the CUDA-graph decoding test and the decoding benchmarks (bench_rollout.py at
# 16M and 0.8B, bench_rl_step.py on BENCH_MODEL, default a random 16M model) into $OUT/bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
E=experiments/evidence/evidence.sh
R=runs/evidence
SFT_STEPS=${SFT_STEPS:-1500}
RL_SECONDS=${RL_SECONDS:-600}
export TEST_N=${TEST_N:-200}
read -ra ARMS <<<"${ARMS:-grpo-lr3e-5:grpo:lr=3e-5 ap-lr3e-5:ap_grpo:lr=3e-5 ap-lr3e-5-kl:ap_grpo:lr=3e-5,beta=0.04 ap-lr1e-4-kl:ap_grpo:lr=1e-4,beta=0.04 srreal-lr3e-5:grpo:lr=3e-5,reward=sr_real}"
# Every arm: 8 prompts x 8 samples a step at 224x224 (the cold start's size), temperature 0.7
# unless the arm says otherwise, a constant lr after 3 warm-up steps, steps enough to outlast
# RL_SECONDS (the run is stopped by time; its latest checkpoint is scored). The 64 episodes are
# trained in micro-batches of 16 (the same gradient as one of 64, a quarter of its activations:
# at 64, three of five arms ran out of memory on an 80 GB card).
RL_COMMON=(model=$R/sft/final max_pixels=50176 prompts_per_step=8 group_size=8 micro_batch=16
  temperature=0.7 max_new_tokens=256 max_tokens=2048 lr_schedule=constant warmup_steps=3
  steps=1000 save_every=5 keep_last=1 log_rollouts=true)

latest() {  # the newest checkpoint folder of a run (or its final model)
  if [[ -d $1/final ]]; then echo "$1/final"; else ls -d "$1"/checkpoint-* | sort -V | tail -1; fi
}

case ${1:-} in
  all)
    mkdir -p $R/logs
    if [[ -n ${START:-} && ! -d $R/sft/final ]]; then mkdir -p $R/sft && cp -r "$START" $R/sft/final; fi
    [[ -d $R/sft/final || -f $R/data/sft.jsonl ]] || bash $E data
    [[ -d $R/sft/final || -d $R/init ]] || bash $E init
    # Few threads a process: the stream's workers (or the arms) already use every core.
    export OMP_NUM_THREADS=2
    if [[ ! -d $R/sft/final ]]; then
      limit=$(( ${SFT_UNTIL:-0} > 0 ? SFT_UNTIL - $(date +%s) : 10 ** 6 ))
      timeout "$limit" bash $E sft steps=$SFT_STEPS eval_every=0 save_every=100 keep_last=1 \
        ${SFT_ARGS:-} >$R/logs/sft.log 2>&1 || echo "SFT stopped at SFT_UNTIL"
      [[ -d $R/sft/final ]] || cp -r "$(latest $R/sft)/model" $R/sft/final
    fi
    [[ -n ${RL_UNTIL:-} ]] && RL_SECONDS=$((RL_UNTIL - $(date +%s)))
    echo "cold start done; RL arms for $RL_SECONDS s"
    rm -f $R/done $R/logs/rl-*.rc
    pids=()
    for spec in "${ARMS[@]}"; do
      IFS=: read -r name arm overrides <<<"$spec"
      (
        rc=0
        timeout "$RL_SECONDS" bash $E rl "$arm" 1 "${RL_COMMON[@]}" output_dir=$R/rl-$name \
          ${overrides//,/ } ${RL_ARGS:-} >$R/logs/rl-$name.log 2>&1 || rc=$?
        echo $rc >$R/logs/rl-$name.rc
      ) &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    for spec in "${ARMS[@]}"; do  # 124: stopped by time, as planned
      name=${spec%%:*}
      rc=$(cat $R/logs/rl-$name.rc)
      ((rc == 0 || rc == 124)) || echo "rl-$name failed (exit $rc): see $R/logs/rl-$name.log"
    done
    OUT=$R/packed bash experiments/rl_recipe/run_gpu.sh pack >/dev/null
    score() {  # MODEL NAME: greedy, and sampled at the arms' temperature (NAME-t0.7)
      bash $E eval "$1" "$2" >$R/logs/eval-$2.log 2>&1 &
      bash $E eval "$1" "$2-t0.7" --temperature 0.7 >$R/logs/eval-$2-t0.7.log 2>&1 &
    }
    score $R/sft/final start
    for spec in "${ARMS[@]}"; do
      name=${spec%%:*}
      model=$(latest $R/rl-$name 2>/dev/null) || { echo "rl-$name saved nothing"; continue; }
      score "$model" "$name"
    done
    wait
    OUT=$R/packed bash experiments/rl_recipe/run_gpu.sh pack >/dev/null
    touch $R/done
    echo "done"
    ;;
  bench)  # decoding on the GPU: the CUDA-graph test, rollout tokens/s, seconds per RL step
    out=${OUT:?bench writes under \$OUT}/bench
    mkdir -p "$out"
    python3 -m pytest -q -p no:cacheprovider -n 0 tests/test_static_decode.py -k cuda 2>&1 | tail -3
    PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}.:benchmarks python3 benchmarks/bench_rl_step.py --device cuda \
      ${BENCH_MODEL:+--model $BENCH_MODEL} --out "$out/rl_step.json" 2>&1 | tail -8
    for size in 16m 0.8b; do
      PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}.:benchmarks python3 benchmarks/bench_rollout.py --device cuda --model-size $size \
        --sizes 1,64,128 --max-new-tokens 128 --naive-episodes 2 --out "$out/rollout_$size.json" \
        2>&1 | grep -v Warning | tail -14
    done
    ;;
  watch)  # progress every 30 s for ${2} seconds
    mkdir -p $R/logs
    for ((t = 0; t < ${2:?watch needs SECONDS}; t += 30)); do
      line="$(date +%s)\tsft:$(tail -1 $R/sft/metrics.jsonl 2>/dev/null | grep -o '"step": [0-9]*, ' | tr -dc 0-9 || true)"
      # NAME:STEP:REWARD for each arm with a folder or a log, and :exit RC once it ended early
      arms=$(ls -d $R/rl-*/ $R/logs/rl-*.log 2>/dev/null | sed 's|.*/rl-||; s|/$||; s|\.log$||' | sort -u || true)
      for name in $arms; do
        line+="\t$name:$(grep -so '"step": [0-9]*\|"rollout/reward_mean": [0-9.e-]*' $R/rl-$name/metrics.jsonl | tail -2 | sed 's/.*: //' | paste -sd: || true)"
        rc=$(cat $R/logs/rl-$name.rc 2>/dev/null || echo 124)
        ((rc == 124)) || line+=":exit $rc"
      done
      echo -e "$line" | tee -a $R/logs/watch.tsv
      [[ -f $R/done ]] && { echo "done"; break; }
      if ((t + 30 < $2)); then sleep 30; fi
    done
    ;;
  pack)  # metrics, configs, logs, evaluation records and the cold start in bfloat16
    out=${OUT:?pack writes under \$OUT}/rl_recipe
    GPUS=1 OUT=$out bash experiments/evidence/evidence_gpu.sh pack recipe sft >/dev/null
    find $R -name rollouts.jsonl | tar czf "$out/rollouts.tgz" -T -
    ls -la "$out"
    ;;
  "" | -h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0" ;;
  *)
    echo "unknown stage '$1': use all, bench, watch or pack" >&2
    exit 2
    ;;
esac
