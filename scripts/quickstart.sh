#!/usr/bin/env bash
# Sets up dependencies, builds moeslim and runs the main job on the bundled tiny Qwen3-MoE model: W8A8 mixed
# quantization as msModelSlim's Qwen3-MoE example does it, then checks and evaluates the written model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target moeslim
MOESLIM=build/src/cli/moeslim
MODEL=models/tiny-qwen3-moe
OUT=build/tiny-qwen3-moe-w8a8

echo "== moeslim info --model $MODEL"
"$MOESLIM" info --model "$MODEL"
echo
echo "== moeslim tokenize --tokenizer $MODEL --input data/qwen3-moe_calib_prompt_50.json (first 400 bytes of build/calib_ids.json)"
"$MOESLIM" tokenize --tokenizer "$MODEL" --input data/qwen3-moe_calib_prompt_50.json --output build/calib_ids.json
head -c 400 build/calib_ids.json; echo " ..."
echo
echo "== moeslim eval --model $MODEL --data data/eval_valid.jsonl (reference perplexity: 81.2497)"
"$MOESLIM" eval --model "$MODEL" --data data/eval_valid.jsonl
echo
echo "== moeslim quant --model_path $MODEL --save_path $OUT (W8A8 mixed, m4, bundled calibration sets; evaluated vs float)"
"$MOESLIM" quant --model_path "$MODEL" --save_path "$OUT" --force --eval_data data/eval_valid.jsonl
echo
echo "== moeslim inspect $OUT"
"$MOESLIM" inspect "$OUT"
echo
echo "== moeslim quant --model_type Qwen3-30B --quant_type w4a8 (msModelSlim's one-click W4A8 recipe; evaluated vs float)"
"$MOESLIM" quant --model_path "$MODEL" --save_path "$OUT-w4a8" --force --model_type Qwen3-30B --quant_type w4a8 \
  --eval_data data/eval_valid.jsonl
"$MOESLIM" inspect "$OUT-w4a8" | tail -1
echo
echo "== moeslim eval --model $OUT --reference $MODEL --data data/eval_valid.jsonl (integer runtime arithmetic)"
"$MOESLIM" eval --model "$OUT" --reference "$MODEL" --data data/eval_valid.jsonl
echo
echo "== the report pages to read (open them in a browser): $OUT/quant_report.html, $OUT-w4a8/quant_report.html"
