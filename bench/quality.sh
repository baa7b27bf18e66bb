#!/usr/bin/env bash
# Quality of every bundled recipe on the bundled tiny models, measured from the written directories with the
# runtime's integer arithmetic: perplexity on data/eval_valid.jsonl (held-in text), mean KL divergence from the
# float model's next-token distribution, top-1 agreement, and how many experts saw no calibration token (those
# are quantized data-free; quant_report.json lists every expert's token count).
# Usage: bench/quality.sh [workdir]      (about 6 minutes on 2 cores; REUSE=1 re-tabulates existing outputs)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/moeslim-quality}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim >/dev/null
mkdir -p "$WORK"
C=configs/qwen3_moe
CASES=(
  "W8A8, no smoothing|--anti_method none"
  "W8A8 m4 (msModelSlim's script)|"
  "W8A8 m4 + --rot|--rot"
  "W8A8 m4, padded stats|--stats-include-padding"
  "W8A8-plus (m4 + moe-input + up-down)|--config $C/qwen3-moe-w8a8-plus.yaml"
  "W4A8 Qwen3-30B, no flex smoothing|--model_type Qwen3-30B --quant_type w4a8 --anti_method none"
  "W4A8 Qwen3-30B (msModelSlim's one-click)|--model_type Qwen3-30B --quant_type w4a8"
  "W4A8 Qwen3-235B (msModelSlim's one-click)|--model_type Qwen3-235B --quant_type w4a8"
  "W4A8-plus Qwen3-30B (+ moe-input + up-down)|--config $C/qwen3-30b-w4a8-plus.yaml"
)
for MODEL in tiny-qwen3-moe-outliers tiny-qwen3-moe; do
  echo
  echo "**$MODEL**"
  echo
  echo "| recipe | perplexity | change vs float | mean KL (nats) | top-1 agreement | data-free experts |"
  echo "|---|---:|---:|---:|---:|---:|"
  FIRST=1
  for CASE in "${CASES[@]}"; do
    NAME=${CASE%%|*}
    FLAGS=${CASE#*|}
    OUT="$WORK/$MODEL-$(echo "$NAME" | tr -c 'A-Za-z0-9\n' '-')"
    # shellcheck disable=SC2086
    [ "${REUSE:-0}" = 1 ] && [ -f "$OUT/quant_report.json" ] || build/src/cli/moeslim quant --model_path "models/$MODEL" --save_path "$OUT" --force \
      --eval_data data/eval_valid.jsonl $FLAGS 2>/dev/null
    R="$OUT/quant_report.json"
    if [ "$FIRST" = 1 ]; then
      jq -r '.evaluation.float_perplexity' "$R" | awk '{ printf "| float (bf16 checkpoint) | %.4f | | | | |\n", $1 }'
      FIRST=0
    fi
    jq -r '.evaluation as $e | ([.per_layer[] | (.experts_without_tokens // []) | length] | add) as $free
           | "\($e.quantized_perplexity) \($e.perplexity_change) \($e.mean_kl) \($e.top1_agreement) \($free)"' "$R" |
      awk -v n="$NAME" '{ printf "| %s | %.4f | %+.2f %% | %.5f | %.4f | %d |\n", n, $1, 100 * $2, $3, $4, $5 }'
  done
done
