#!/usr/bin/env bash
# Installs moeslim's build dependencies from Debian 12 packages. Idempotent: packages that are already
# installed are skipped, so running it twice costs one `dpkg -s` per package.
# `setup.sh fuzz` also installs clang and its sanitizer/libFuzzer runtime (scripts/fuzz.sh).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libicu-dev libdnnl-dev libcli11-dev libfmt-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libxml2-dev  # the report page's tests parse it as XML
  jq  # bench scripts read quant_report.json
)
if [ "${1:-}" = "fuzz" ]; then PACKAGES+=(clang libclang-rt-14-dev); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
