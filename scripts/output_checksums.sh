#!/usr/bin/env bash
# The output contract: SHA-256 of every file `moeslim quant` writes (all but quant_report.json, whose timings
# and memory figures vary run to run, and quant_report.html, the page made from it) for every bundled recipe
# and the script's flag variants, on both bundled tiny models, at --threads 1 and 2.
#
#   scripts/output_checksums.sh record FILE [MOESLIM]   writes the checksums to FILE
#   scripts/output_checksums.sh check FILE [MOESLIM]    recomputes them and diffs against FILE (exit 1 on any
#                                                       difference, listing the files that changed)
#
# MOESLIM defaults to build/src/cli/moeslim. Before a refactor or a speed change, record with the old binary;
# after it, check with the new one. tests/data/output_checksums.txt is the recorded contract of the current
# main. WORK (default: a fresh temporary directory) holds the outputs; CASES_FILTER (a grep -E pattern on the
# case name) runs a subset; EXTRA_FLAGS go to every run (e.g. "--expert_group 3": the output must not depend
# on it). About 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: output_checksums.sh record|check FILE [MOESLIM]}
FILE=${2:?usage: output_checksums.sh record|check FILE [MOESLIM]}
BIN=${3:-build/src/cli/moeslim}
[ -x "$BIN" ] || { echo "output_checksums: no moeslim binary at $BIN (build it first)" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d)}
C=configs/qwen3_moe
# name|flags: every bundled recipe, and the W8A8 script's flags that change what is written.
CASES=(
  "w8a8|"
  "w8a8-none|--anti_method none"
  "w8a8-rot|--rot"
  "w8a8-mindie|--mindie_format"
  "w8a8-padded|--stats-include-padding"
  "w8a8-plus|--config $C/qwen3-moe-w8a8-plus.yaml"
  "w4a8-30b|--model_type Qwen3-30B --quant_type w4a8"
  "w4a8-30b-none|--model_type Qwen3-30B --quant_type w4a8 --anti_method none"
  "w4a8-235b|--model_type Qwen3-235B --quant_type w4a8"
  "w4a8-30b-plus|--config $C/qwen3-30b-w4a8-plus.yaml"
  "w4a8-30b-gptq|--config $C/qwen3-30b-w4a8-gptq.yaml"
  "w4a8-235b-gptq|--config $C/qwen3-235b-w4a8-gptq.yaml"
  "w4a8-30b-rot|--config $C/qwen3-30b-w4a8-rot.yaml"
  "w4a8-235b-rot|--config $C/qwen3-235b-w4a8-rot.yaml"
  "w4a8-rot-gptq|--config $C/qwen3-moe-w4a8-rot-gptq.yaml"
  "w4a8-rot-gptq-ct|--config $C/qwen3-moe-w4a8-rot-gptq-ct.yaml"
  "w8a8-dynamic-ct|--config $C/qwen3-moe-w8a8-dynamic.yaml"
  "w4a16-gptq-ct|--config $C/qwen3-moe-w4a16-gptq.yaml"
)
mkdir -p "$WORK"
OUT_LIST=$(mktemp)
trap 'rm -f "$OUT_LIST"' EXIT
for MODEL in tiny-qwen3-moe tiny-qwen3-moe-outliers; do
  for CASE in "${CASES[@]}"; do
    NAME=${CASE%%|*}
    FLAGS=${CASE#*|}
    if [ -n "${CASES_FILTER:-}" ] && ! echo "$NAME" | grep -Eq "$CASES_FILTER"; then continue; fi
    for THREADS in 1 2; do
      OUT="$WORK/$MODEL/$NAME-t$THREADS"
      mkdir -p "$WORK/$MODEL"
      # shellcheck disable=SC2086
      if ! "$BIN" quant --model_path "models/$MODEL" --save_path "$OUT" --force --threads "$THREADS" $FLAGS ${EXTRA_FLAGS:-} \
        >/dev/null 2>"$WORK/stderr.txt"; then
        echo "output_checksums: quant failed for $MODEL $NAME --threads $THREADS:" >&2
        cat "$WORK/stderr.txt" >&2
        exit 1
      fi
      (cd "$OUT" && find . -type f ! -name quant_report.json ! -name quant_report.html | LC_ALL=C sort | xargs sha256sum) |
        sed "s|  \./|  $MODEL/$NAME/t$THREADS/|" >>"$OUT_LIST"
      echo "output_checksums: $MODEL $NAME --threads $THREADS" >&2
    done
  done
done
case "$MODE" in
  record)
    cp "$OUT_LIST" "$FILE"
    echo "output_checksums: $(wc -l <"$FILE") files recorded in $FILE"
    ;;
  check)
    EXPECTED=$(mktemp)
    if [ -n "${CASES_FILTER:-}" ]; then
      # keep only the recorded lines of the cases that ran
      awk '{ print $2 }' "$OUT_LIST" | awk -F/ '{ print $1 "/" $2 "/" }' | sort -u >"$EXPECTED.keys"
      grep -F -f "$EXPECTED.keys" "$FILE" >"$EXPECTED" || true
      rm -f "$EXPECTED.keys"
    else
      cp "$FILE" "$EXPECTED"
    fi
    if diff <(sort -k2 "$EXPECTED") <(sort -k2 "$OUT_LIST") >"$WORK/checksums.diff"; then
      echo "output_checksums: all $(wc -l <"$OUT_LIST") files identical to $FILE"
      rm -f "$EXPECTED"
    else
      echo "output_checksums: outputs differ from $FILE (< recorded, > now):" >&2
      cat "$WORK/checksums.diff" >&2
      rm -f "$EXPECTED"
      exit 1
    fi
    ;;
  *)
    echo "output_checksums: unknown mode $MODE (record or check)" >&2
    exit 2
    ;;
esac
