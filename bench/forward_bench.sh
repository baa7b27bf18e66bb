#!/usr/bin/env bash
# Forward-pass benchmark on Qwen3-30B-A3B-shaped synthetic checkpoints: the 96 calibration prompts, batch 4,
# at 2 and 6 layers (peak RSS must not grow with depth: it proves the layer streaming).
# Usage: bench/forward_bench.sh [--precision f32|bf16] [workdir]   (needs ~10 GB free disk in workdir)
set -euo pipefail
cd "$(dirname "$0")/.."
PRECISION=f32
if [ "${1:-}" = "--precision" ]; then PRECISION=$2; shift 2; fi
WORK=${1:-/tmp/moeslim-bench}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target moeslim forward_bench >/dev/null
mkdir -p "$WORK"
for L in 2 6; do
  [ -f "$WORK/q30b-$L/config.json" ] || build/src/cli/moeslim synth --preset qwen3-30b-a3b --layers $L --out "$WORK/q30b-$L"
done
for L in 2 6; do
  echo "### qwen3-30b-a3b shapes, $L layers"
  OMP_WAIT_POLICY=passive build/bench/forward_bench --model "$WORK/q30b-$L" --batch 4 --precision "$PRECISION"
  echo
done
