#!/usr/bin/env bash
# Quality of W8A8 mixed quantization on the bundled tiny models, measured from the written directories with the
# runtime's integer arithmetic: perplexity on data/eval_valid.jsonl (held-in text), mean KL divergence from the
# float model's next-token distribution, top-1 agreement. Rows: no smoothing, m4 (default), m4 with msModelSlim's
# padded statistics. Usage: bench/quality.sh [workdir]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/moeslim-quality}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim >/dev/null
mkdir -p "$WORK"
echo "| model | anti-outlier | float ppl | W8A8 ppl | change | mean KL (nats) | top-1 agreement |"
echo "|---|---|---:|---:|---:|---:|---:|"
for MODEL in tiny-qwen3-moe tiny-qwen3-moe-outliers; do
  for CASE in "none:--anti_method none" "m4:" "m4, padded stats:--stats-include-padding"; do
    NAME=${CASE%%:*}
    FLAGS=${CASE#*:}
    OUT="$WORK/$MODEL-$(echo "$NAME" | tr -c 'a-z0-9\n' '-')"
    # shellcheck disable=SC2086
    build/src/cli/moeslim quant --model_path "models/$MODEL" --save_path "$OUT" --force \
      --eval_data data/eval_valid.jsonl $FLAGS 2>/dev/null
    # The evaluation block of quant_report.json, one value per line.
    read -r FLOAT QUANT CHANGE KL TOP1 < <(tr -d ' ,\n' < "$OUT/quant_report.json" |
      sed -E 's/.*"evaluation":\{[^}]*"float_perplexity":([^"]*)"quantized_perplexity":([^"]*)"perplexity_change":([^"]*)"mean_kl":([^"]*)"top1_agreement":([^}"]*)\}.*/\1 \2 \3 \4 \5/'; echo)
    awk -v m="$MODEL" -v n="$NAME" -v f="$FLOAT" -v q="$QUANT" -v c="$CHANGE" -v k="$KL" -v t="$TOP1" \
      'BEGIN { printf "| %s | %s | %.4f | %.4f | %+.2f %% | %.5f | %.4f |\n", m, n, f, q, 100 * c, k, t }'
  done
done
