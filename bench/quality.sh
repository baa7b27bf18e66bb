#!/usr/bin/env bash
# Quality of every bundled recipe on the bundled tiny models, measured from the written directories with the
# runtime's integer arithmetic: perplexity on data/eval_valid.jsonl (held-in text), mean KL divergence from the
# float model's next-token distribution, top-1 agreement, router agreement (the share of evaluation tokens whose
# top-k experts are the float model's, over every MoE layer, each model on its own hidden states), how many
# experts saw no calibration token (those are quantized data-free; quant_report.json lists every expert's token
# count) and how many linears GPTQ left to its fallback. The W4A8 rows include an ablation of
# qwen3-moe-w4a8-rot-gptq (each of its steps left out in turn), written to the work directory as recipes of their
# own, and so do the W4A16 rows.
# Usage: bench/quality.sh [--timing] [workdir]
#   (about 20 minutes on 2 cores; REUSE=1 re-tabulates existing outputs; MODELS="a b" picks models/ entries;
#   ONLY=REGEX runs only the rows whose names match the extended regular expression)
#   --timing  also the W4A8 recipes' seconds per layer on a 2-layer Qwen3-30B-A3B-shaped synth checkpoint
#             (build/bench/quant_bench; about 25 more minutes on 2 cores and 12 GB of disk), so that the price
#             of each step is visible next to its quality
set -euo pipefail
cd "$(dirname "$0")/.."
TIMING=0
if [ "${1:-}" = "--timing" ]; then TIMING=1; shift; fi
WORK=${1:-/tmp/moeslim-quality}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim quant_bench >/dev/null
mkdir -p "$WORK"
C=configs/qwen3_moe
BEST=$C/qwen3-moe-w4a8-rot-gptq.yaml
# The ablation: the best recipe with one step changed.
sed '/^  - rotate:/,/^      method: hadamard/d' "$BEST" >"$WORK/ablation-no-rotation.yaml"
sed 's/weight: gptq/weight: ssz/' "$BEST" >"$WORK/ablation-ssz.yaml"
sed 's/weight: gptq/weight: gptq\n        gptq_act_order: false/' "$BEST" >"$WORK/ablation-no-act-order.yaml"
sed 's/subgraphs: \[norm-linear, ov, moe-input, up-down\]/subgraphs: [norm-linear, ov]/' "$BEST" >"$WORK/ablation-no-moe-smoothing.yaml"
# The W4A16 recipe without its smoothing step, and with minmax (round to nearest) in place of GPTQ.
W4A16=$C/qwen3-moe-w4a16-gptq.yaml
sed '/^  - smooth:/,/^      subgraphs:/d' "$W4A16" >"$WORK/w4a16-no-smoothing.yaml"
sed 's/weight: gptq/weight: minmax/' "$W4A16" >"$WORK/w4a16-minmax.yaml"
# The W8A8 dynamic recipe without its rotation.
sed '/^  - rotate:/,/^      method: hadamard/d' $C/qwen3-moe-w8a8-dynamic.yaml >"$WORK/w8a8-dynamic-no-rotation.yaml"
# msModelSlim's W8A8 script with GPTQ weights (v0 grid) in both groups.
sed 's/^        scheme: w8a8\(_dynamic\)\?$/&\n        weight: gptq/' $C/qwen3-moe-w8a8.yaml >"$WORK/w8a8-gptq.yaml"
CASES=(
  "W8A8, no smoothing|--anti_method none"
  "W8A8 m4 (msModelSlim's script)|"
  "W8A8 m4, GPTQ weights|--config $WORK/w8a8-gptq.yaml"
  "W8A8 m4 + --rot|--rot"
  "W8A8 m4, padded stats|--stats-include-padding"
  "W8A8-plus (m4 + moe-input + up-down)|--config $C/qwen3-moe-w8a8-plus.yaml"
  "W4A8 Qwen3-30B, no flex smoothing|--model_type Qwen3-30B --quant_type w4a8 --anti_method none"
  "W4A8 Qwen3-30B (msModelSlim's one-click)|--model_type Qwen3-30B --quant_type w4a8"
  "W4A8 Qwen3-30B, GPTQ weights|--config $C/qwen3-30b-w4a8-gptq.yaml"
  "W4A8 Qwen3-30B + rotation|--config $C/qwen3-30b-w4a8-rot.yaml"
  "W4A8 Qwen3-235B (msModelSlim's one-click)|--model_type Qwen3-235B --quant_type w4a8"
  "W4A8 Qwen3-235B, GPTQ weights|--config $C/qwen3-235b-w4a8-gptq.yaml"
  "W4A8 Qwen3-235B + rotation|--config $C/qwen3-235b-w4a8-rot.yaml"
  "W4A8-plus Qwen3-30B (+ moe-input + up-down)|--config $C/qwen3-30b-w4a8-plus.yaml"
  "W4A8 rot + plus smoothing + GPTQ (qwen3-moe-w4a8-rot-gptq)|--config $BEST"
  "  ablation: without rotation|--config $WORK/ablation-no-rotation.yaml"
  "  ablation: ssz instead of GPTQ|--config $WORK/ablation-ssz.yaml"
  "  ablation: GPTQ without act_order|--config $WORK/ablation-no-act-order.yaml"
  "  ablation: no moe-input / up-down smoothing|--config $WORK/ablation-no-moe-smoothing.yaml"
  "compressed-tensors W4A8 (qwen3-moe-w4a8-rot-gptq-ct)|--config $C/qwen3-moe-w4a8-rot-gptq-ct.yaml"
  "compressed-tensors W8A8 dynamic (qwen3-moe-w8a8-dynamic)|--config $C/qwen3-moe-w8a8-dynamic.yaml"
  "  W8A8 dynamic ablation: no rotation|--config $WORK/w8a8-dynamic-no-rotation.yaml"
  "compressed-tensors W4A16 g128 GPTQ (qwen3-moe-w4a16-gptq)|--config $W4A16"
  "  W4A16 ablation: no smoothing|--config $WORK/w4a16-no-smoothing.yaml"
  "  W4A16 ablation: minmax instead of GPTQ|--config $WORK/w4a16-minmax.yaml"
)
for MODEL in ${MODELS:-tiny-qwen3-moe-massive tiny-qwen3-moe-outliers tiny-qwen3-moe}; do
  echo
  echo "**$MODEL**"
  echo
  echo "| recipe | perplexity | change vs float | mean KL (nats) | top-1 agreement | router agreement | data-free experts | GPTQ fallbacks |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  FIRST=1
  for CASE in "${CASES[@]}"; do
    NAME=${CASE%%|*}
    FLAGS=${CASE#*|}
    [ -z "${ONLY:-}" ] || echo "$NAME" | grep -Eq "$ONLY" || continue
    OUT="$WORK/$MODEL-$(echo "$NAME" | tr -c 'A-Za-z0-9\n' '-')"
    # shellcheck disable=SC2086
    [ "${REUSE:-0}" = 1 ] && [ -f "$OUT/quant_report.json" ] || build/src/cli/moeslim quant --model_path "models/$MODEL" --save_path "$OUT" --force \
      --eval_data data/eval_valid.jsonl $FLAGS 2>/dev/null
    R="$OUT/quant_report.json"
    if [ "$FIRST" = 1 ]; then
      jq -r '.evaluation.float_perplexity' "$R" | awk '{ printf "| float (bf16 checkpoint) | %.4f | | | | | | |\n", $1 }'
      FIRST=0
    fi
    jq -r '.evaluation as $e | ([.per_layer[] | (.experts_without_tokens // []) | length] | add) as $free
           | ([.per_layer[] | (.weight_fallbacks // []) | length] | add) as $fallbacks
           | "\($e.quantized_perplexity) \($e.perplexity_change) \($e.mean_kl) \($e.top1_agreement) \($e.router_agreement.exact // "-") \($free) \($fallbacks)"' "$R" |
      awk -v n="$NAME" '{ r = $5 == "-" ? "-" : sprintf("%.4f", $5)
                           printf "| %s | %.4f | %+.2f %% | %.5f | %.4f | %s | %d | %d |\n", n, $1, 100 * $2, $3, $4, r, $6, $7 }'
  done
done

[ "$TIMING" = 1 ] || exit 0
# The price of each step: quant_bench on a 2-layer Qwen3-30B-A3B-shaped checkpoint (the default datasets), as
# bench/quant_bench.sh runs it; "weight quantization" is where GPTQ's Hessians and updates go.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
SYNTH="$WORK/synth-30b-2"
[ -f "$SYNTH/config.json" ] || build/src/cli/moeslim synth --preset qwen3-30b-a3b --layers 2 --out "$SYNTH" 2>/dev/null
echo
echo "**W4A8 seconds per layer, Qwen3-30B-A3B shapes** ($(nproc) CPUs; build/bench/quant_bench --model $SYNTH --recipe FILE)"
echo
echo "| recipe | s / layer | smoothing s / layer | weight quantization s / layer | peak RSS GiB |"
echo "|---|---:|---:|---:|---:|"
for CASE in "one-click|$C/qwen3-30b-w4a8.yaml" "GPTQ weights|$C/qwen3-30b-w4a8-gptq.yaml" \
            "+ rotation|$C/qwen3-30b-w4a8-rot.yaml" "plus|$C/qwen3-30b-w4a8-plus.yaml" "rot + plus + GPTQ|$BEST"; do
  NAME=${CASE%%|*}
  LOG="$WORK/timing-$(echo "$NAME" | tr -c 'A-Za-z0-9\n' '-').txt"
  build/bench/quant_bench --model "$SYNTH" --out "$WORK/timing-out" --recipe "${CASE#*|}" >"$LOG" 2>/dev/null
  awk -v n="$NAME" -F'|' '
    /^\| all per-layer phases/ { total = $3 }
    /^\| smoothing / { smooth = $3 }
    /^\| weight quantization / { wq = $3 }
    /^peak RSS:/ { split($0, a, " "); rss = a[3] }
    END { gsub(/ /, "", total); gsub(/ /, "", smooth); gsub(/ /, "", wq);
          printf "| %s | %s | %s | %s | %s |\n", n, total, smooth, wq, rss }' "$LOG"
done
