#!/usr/bin/env bash
# Renders an output directory's quant_report.html to a PNG with headless Chromium, to look at the page without a
# desktop or to put a picture of it in a document. Not part of CI and not in setup.sh's packages: it needs
# Debian's chromium (apt-get install --no-install-recommends chromium).
#
#   scripts/render_report.sh DIR OUT.png [WIDTHxHEIGHT]
#
# DIR holds quant_report.html (moeslim quant writes it; `moeslim report DIR` makes it from quant_report.json).
# The picture is the top WIDTHxHEIGHT CSS pixels of the page (default 900x1400), at one device pixel each.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
DIR=$1
OUT=$2
SIZE=${3:-900x1400}
if ! [[ $SIZE =~ ^[0-9]+x[0-9]+$ ]]; then
  echo "render_report: size '$SIZE' is not WIDTHxHEIGHT" >&2
  exit 2
fi
PAGE=$(realpath "$DIR/quant_report.html" 2>/dev/null || true)
if [ -z "$PAGE" ] || [ ! -f "$PAGE" ]; then
  echo "render_report: no $DIR/quant_report.html (moeslim report $DIR makes it from quant_report.json)" >&2
  exit 1
fi
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "render_report: needs Chromium: apt-get install --no-install-recommends chromium" >&2
  exit 1
fi
OUT_ABS=$(realpath -m "$OUT")
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
SANDBOX=()
# Chromium refuses to run its sandbox as root; the page is a local file with no scripts.
[ "$(id -u)" -eq 0 ] && SANDBOX=(--no-sandbox)
"$CHROMIUM" --headless "${SANDBOX[@]}" --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$PROFILE" \
  --force-device-scale-factor=1 --window-size="${SIZE/x/,}" --screenshot="$OUT_ABS" "file://$PAGE" \
  >"$PROFILE/chromium.log" 2>&1 || {
  cat "$PROFILE/chromium.log" >&2
  exit 1
}
[ -s "$OUT_ABS" ] || { cat "$PROFILE/chromium.log" >&2; echo "render_report: no picture written" >&2; exit 1; }
echo "$OUT_ABS"
