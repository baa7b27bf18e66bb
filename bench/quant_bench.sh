#!/usr/bin/env bash
# W8A8 quantization benchmark on Qwen3-30B-A3B-shaped synthetic checkpoints at 2 and 4 layers: seconds per
# layer for each phase, the GEMM peaks measured in the same run, peak RSS (must not grow with depth: the
# layer streaming), and the projected time for all 48 layers of Qwen3-30B-A3B. With --235b, also one layer of
# Qwen3-235B-A22B shapes, projected to its 94 layers.
# Usage: bench/quant_bench.sh [--235b] [workdir]   (needs ~12 GB free disk, ~20 GB more with --235b)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_235B=0
if [ "${1:-}" = "--235b" ]; then WITH_235B=1; shift; fi
WORK=${1:-/tmp/moeslim-bench}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim quant_bench >/dev/null
mkdir -p "$WORK"
synth() {  # preset layers dir
  [ -f "$3/config.json" ] || build/src/cli/moeslim synth --preset "$1" --layers "$2" --out "$3" 2>/dev/null
}
for L in 2 4; do
  synth qwen3-30b-a3b $L "$WORK/q30b-$L"
  echo "### qwen3-30b-a3b shapes, $L layers"
  OMP_WAIT_POLICY=passive build/bench/quant_bench --model "$WORK/q30b-$L" --out "$WORK/q30b-$L-w8a8" \
    --project-layers 48 2>/dev/null
  echo
done
if [ "$WITH_235B" = 1 ]; then
  synth qwen3-235b-a22b 1 "$WORK/q235b-1"
  echo "### qwen3-235b-a22b shapes, 1 layer"
  OMP_WAIT_POLICY=passive build/bench/quant_bench --model "$WORK/q235b-1" --out "$WORK/q235b-1-w8a8" \
    --project-layers 94 2>/dev/null
fi
