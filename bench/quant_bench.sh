#!/usr/bin/env bash
# Quantization benchmark on Qwen3-30B-A3B-shaped synthetic checkpoints at 2 and 4 layers: seconds per layer
# for each phase, the GEMM peaks measured in the same run, peak RSS (must not grow with depth: the layer
# streaming), and the projected time for all 48 layers of Qwen3-30B-A3B. With --235b, also one layer of
# Qwen3-235B-A22B shapes, projected to its 94 layers. Every output is then checked with `moeslim inspect`,
# and the per-scheme counts of its description are printed (W4A8 recipes must show int4 experts as
# W4A8_DYNAMIC).
# Usage: bench/quant_bench.sh [--recipe FILE] [--235b] [--skip-30b] [--peer] [workdir]
#   --recipe FILE  a recipe (default: configs/qwen3_moe/qwen3-moe-w8a8.yaml, the W8A8 script's); with --235b
#                  and no --recipe the 235B run uses the same file
#   --recipe-235b FILE  a different recipe for the 235B run (e.g. configs/qwen3_moe/qwen3-235b-w4a8.yaml)
#   --peer         also time the PyTorch-eager peer (bench/peer/torch_m4_quant.py, needs Debian's python3-torch)
#                  on the 2-layer 30B checkpoint: at its defaults, with glibc's allocator, and at this run's
#                  thread count; compare its "total wall" with moeslim's setup + 2 x s/layer above
# Needs ~12 GB free disk for the 30B runs, ~20 GB more with --235b, and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_235B=0
WITH_30B=1
WITH_PEER=0
RECIPE=configs/qwen3_moe/qwen3-moe-w8a8.yaml
RECIPE_235B=
while [ $# -gt 0 ]; do
  case "$1" in
    --235b) WITH_235B=1; shift ;;
    --skip-30b) WITH_30B=0; shift ;;
    --peer) WITH_PEER=1; shift ;;
    --recipe) RECIPE=$2; shift 2 ;;
    --recipe-235b) RECIPE_235B=$2; shift 2 ;;
    -*) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    *) break ;;
  esac
done
RECIPE_235B=${RECIPE_235B:-$RECIPE}
WORK=${1:-/tmp/moeslim-bench}
for r in "$RECIPE" "$RECIPE_235B"; do
  [ -f "$r" ] || { echo "recipe not found: $r" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "jq is needed (bash scripts/setup.sh installs it)" >&2; exit 2; }
# As the moeslim command runs (cli/main.cc): idle OpenMP threads wait passively unless the caller chose.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim quant_bench >/dev/null
mkdir -p "$WORK"
synth() {  # preset layers dir
  [ -f "$3/config.json" ] || build/src/cli/moeslim synth --preset "$1" --layers "$2" --out "$3" 2>/dev/null
}
check() {  # output dir: inspect must accept it; print how many tensors each scheme holds
  build/src/cli/moeslim inspect "$1" >"$1.inspect.txt" 2>&1 ||
    { echo "inspect rejected $1 (see $1.inspect.txt)" >&2; exit 1; }
  echo "inspect: accepted; description: $(jq -r '[to_entries[] | select(.key | endswith(".weight")) | .value]
    | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$1"/quant_model_description*.json) weights"
  echo "experts: $(jq -r '[to_entries[] | select(.key | test("experts\\.[0-9]+\\..*_proj\\.weight$")) | .value]
    | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$1"/quant_model_description*.json)"
}
run() {  # model out recipe layers
  build/bench/quant_bench --model "$1" --out "$2" --recipe "$3" \
    --project-layers "$4" 2>/dev/null
  check "$2"
}
tag=$(basename "$RECIPE" .yaml)
if [ "$WITH_30B" = 1 ]; then
  for L in 2 4; do
    synth qwen3-30b-a3b $L "$WORK/q30b-$L"
    echo "### qwen3-30b-a3b shapes, $L layers, $tag"
    run "$WORK/q30b-$L" "$WORK/q30b-$L-$tag" "$RECIPE" 48
    echo
  done
fi
if [ "$WITH_235B" = 1 ]; then
  synth qwen3-235b-a22b 1 "$WORK/q235b-1"
  tag=$(basename "$RECIPE_235B" .yaml)
  echo "### qwen3-235b-a22b shapes, 1 layer, $tag"
  run "$WORK/q235b-1" "$WORK/q235b-1-$tag" "$RECIPE_235B" 94
fi
if [ "$WITH_PEER" = 1 ]; then
  /usr/bin/python3 -c "import torch" 2>/dev/null ||
    { echo "--peer needs PyTorch for /usr/bin/python3 (apt-get install python3-torch python3-numpy)" >&2; exit 2; }
  synth qwen3-30b-a3b 2 "$WORK/q30b-2"
  for set in anti calib; do
    build/src/cli/moeslim tokenize --tokenizer "$WORK/q30b-2" --input "data/qwen3-moe_${set}_prompt_50.json" \
      --output "$WORK/${set}_ids.json" 2>/dev/null
  done
  peer() {  # label, extra flags
    echo "### PyTorch-eager peer, $1"
    /usr/bin/python3 bench/peer/torch_m4_quant.py --model "$WORK/q30b-2" --anti-ids "$WORK/anti_ids.json" \
      --calib-ids "$WORK/calib_ids.json" --batch-size 4 "${@:2}" 2>&1 | grep -E "^(total wall|allocator)"
  }
  peer "its defaults, glibc's allocator" --allocator system
  peer "tcmalloc, $(nproc) threads" --threads "$(nproc)"
fi
