#!/usr/bin/env bash
# Sets up dependencies, builds moeslim and runs it on the bundled tiny Qwen3-MoE model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOESLIM_BUILD_TESTS=OFF
cmake --build build -j "$(nproc)" --target moeslim
MOESLIM=build/src/cli/moeslim
MODEL=models/tiny-qwen3-moe

echo "== moeslim info --model $MODEL"
"$MOESLIM" info --model "$MODEL"
echo
echo "== moeslim tokenize --tokenizer $MODEL --input data/qwen3-moe_calib_prompt_50.json (first 400 bytes of build/calib_ids.json)"
"$MOESLIM" tokenize --tokenizer "$MODEL" --input data/qwen3-moe_calib_prompt_50.json --output build/calib_ids.json
head -c 400 build/calib_ids.json; echo " ..."
echo
echo "== moeslim eval --model $MODEL --data data/eval_valid.jsonl (reference perplexity: 81.2497)"
"$MOESLIM" eval --model "$MODEL" --data data/eval_valid.jsonl
