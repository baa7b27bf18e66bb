#!/usr/bin/env bash
# Builds the libFuzzer harnesses in fuzz/ with clang (ASan + UBSan, no recovery) and runs each for a given
# time on a corpus seeded from the bundled model, tokenizers and datasets. Findings (crashing, leaking, slow or
# timed-out inputs) land in build-fuzz/artifacts/<harness>/; new ones make the script exit non-zero. The
# corpus grows in build-fuzz/corpus/ from run to run.
# Usage: scripts/fuzz.sh [SECONDS_PER_HARNESS=600] [HARNESS...]   (default: every harness, one after another)
# Reproduce a finding: build-fuzz/fuzz/<harness> build-fuzz/artifacts/<harness>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_safetensors_header fuzz_checkpoint_index fuzz_tokenizer_encode
                                         fuzz_tokenizer_json fuzz_calibration_data)
bash scripts/setup.sh fuzz >/dev/null
B=build-fuzz
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DMOESLIM_FUZZ=ON \
  >/dev/null
cmake --build "$B" --target "${HARNESSES[@]}" >/dev/null

le64() {  # the 8-byte little-endian encoding of $1
  local v=$1 i
  for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(((v >> (8 * i)) & 255)))"; done
}
seed_safetensors_header() {  # data-area size (8 bytes LE) + header JSON, from real shards and by hand
  local d=$1 f n size i=0
  for f in models/tiny-qwen3-moe/*.safetensors; do
    n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    size=$(stat -c %s "$f")
    { le64 $((size - 8 - n)); head -c $((8 + n)) "$f" | tail -c "$n"; } >"$d/shard-$i"
    i=$((i + 1))
  done
  { le64 8; printf '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; } >"$d/one"
  { le64 6; printf '{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[1,3],"data_offsets":[0,6]},'
    printf '"e":{"dtype":"I8","shape":[0],"data_offsets":[6,6]}}   '; } >"$d/two"
}
seed_checkpoint_index() {  # the scratch shards' valid index (fuzz_checkpoint_index.cc) and the tiny model's
  local d=$1 s1=model-00001-of-00002.safetensors s2=model-00002-of-00002.safetensors
  printf '{"metadata":{"total_size":40},"weight_map":{"model.embed_tokens.weight":"%s","model.norm.weight":"%s",'\
'"lm_head.weight":"%s"}}' $s1 $s1 $s2 >"$d/valid"
  cp models/tiny-qwen3-moe/model.safetensors.index.json "$d/tiny"
}
seed_tokenizer_encode() {  # held-in text lines, special tokens, invalid UTF-8
  local d=$1 i=0 line
  while IFS= read -r line && [ $i -lt 40 ]; do printf '\0%s' "$line" >"$d/eval-$i"; i=$((i + 1)); done \
    < <(jq -r '.text' data/eval_valid.jsonl)
  printf '\0Hello<|endoftext|>world <think>x</think>\r\n  12345 ' >"$d/special"
  printf '\1<|im_start|>user\n\xff\xfe bad \xc3\x28 \xed\xa0\x80 \xf0\x9f\x98\x80 e\xcc\x81' >"$d/invalid"
}
seed_tokenizer_json() {  # the tiny model's tokenizer.json cut to its first 300 tokens and their merges
  local d=$1
  jq -c '.model.vocab |= with_entries(select(.value < 300))
         | .model.vocab as $v
         | .model.merges |= map(select(($v[.[0]] != null) and ($v[.[1]] != null) and ($v[.[0] + .[1]] != null)))
         | .added_tokens |= .[:4]' models/tiny-qwen3-moe/tokenizer.json >"$d/small"
}
seed_calibration_data() {  # both layouts, small
  local d=$1
  jq -c '.[:3]' data/qwen3-moe_calib_prompt_50.json >"$d/array"
  head -n 3 data/eval_valid.jsonl >"$d/jsonl"
  printf '[""]' >"$d/empty-string"
  printf '\n{"inputs_pretokenized": "x", "other": 1}\n\n{"text":"y"}' >"$d/jsonl-mixed"
}

status=0
summary=()
for h in "${HARNESSES[@]}"; do
  seeds="$B/seeds/$h" corpus="$B/corpus/$h" artifacts="$B/artifacts/$h"
  rm -rf "$seeds"
  mkdir -p "$seeds" "$corpus" "$artifacts"
  "seed_${h#fuzz_}" "$seeds"
  touch "$B/$h.start"  # findings are the artifacts newer than this
  echo "fuzz: $h for ${SECONDS_EACH}s (log: $B/$h.log)"
  set +e
  "$B/fuzz/$h" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -dict=fuzz/json.dict -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$seeds" >"$B/$h.log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$B/$h.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -E '^#[0-9]+' "$B/$h.log" | tail -1 | grep -o 'cov: [0-9]* ft: [0-9]*' || echo 'cov: ?')
  found=$(find "$artifacts" -type f -newer "$B/$h.start" | wc -l)
  summary+=("$h: exit $rc, ${runs} executions, $cov, corpus $(ls "$corpus" | wc -l) files, $found findings")
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then status=1; tail -n 40 "$B/$h.log"; fi
done
printf '%s\n' "${summary[@]}"
exit $status
