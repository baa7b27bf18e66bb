#!/usr/bin/env bash
# Driver of the ct_loader_check test: make compressed-tensors checkpoints of the tiny model with moeslim,
# then run scripts/check_ct_loaders.py on them.  Exit 77 (skip) at once when the source trees are absent.
# Usage: run_ct_loader_check.sh SOURCES_DIR MOESLIM_EXE REPO_ROOT WORK_DIR [NAME=RECIPE.yaml ...]
set -euo pipefail
sources=${1:-${MOESLIM_CT_SOURCES:-}}
exe=$2 repo=$3 work=$4
shift 4
if [[ -z "$sources" || ! -d "$sources/compressed-tensors" || ! -d "$sources/vllm" ]]; then
  echo "SKIP: ct_loader_check needs compressed-tensors and vLLM source trees in MOESLIM_CT_SOURCES" \
       "(now '${sources}'); see docs/loader-check.md for how to fetch them."
  exit 77
fi
python=${PYTHON:-python3}
# The shared tiny model; the repository bundles an identical copy for hosts without ../shared.
model="$repo/../shared/models/tiny-qwen3-moe"
[[ -d "$model" ]] || model="$repo/models/tiny-qwen3-moe"

rm -rf "$work" && mkdir -p "$work"
# Every bundled recipe that writes compressed-tensors, then the extra NAME=RECIPE pairs given.
recipes=()
for r in "$repo"/configs/*/*.yaml; do
  grep -q '^  format: compressed-tensors' "$r" && recipes+=("$(basename "$r" .yaml)=$r")
done
recipes+=("$@")
outs=()
for spec in "${recipes[@]}"; do
  name=${spec%%=*} recipe=${spec#*=}
  cp "$recipe" "$work/$name.yaml"
  # A recipe without a save block gets one.
  grep -q '^save:' "$work/$name.yaml" || printf 'save:\n  format: compressed-tensors\n' >> "$work/$name.yaml"
  echo "== making $name with $work/$name.yaml"
  "$exe" quant --config "$work/$name.yaml" --model_path "$model" --save_path "$work/out-$name" \
    > "$work/$name.log" 2>&1 || { tail -20 "$work/$name.log"; echo "moeslim quant failed for $name"; exit 1; }
  outs+=("$work/out-$name")
done
exec "$python" "$repo/scripts/check_ct_loaders.py" --sources "$sources" "${outs[@]}"
