#!/usr/bin/env bash
# Sets up dependencies, builds moeslim (Release) and runs the whole test suite with CTest; then builds it
# again with AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer (every report fatal) and runs the
# suite there too, except the tests that are whole `moeslim quant` runs (quant_cli_test, w4a8_cli_test,
# quant_faults_test, quant_writes_report_test: full runs on the tiny models, many times slower at -O1 under ASan,
# through code the unit tests already run sanitized; quant_faults_test alone took 189 s there).
# The malformed-input corpus, the recipe, reader, tokenizer, kernel, quantizer, writer and eval tests all run
# sanitized. MOESLIM_SKIP_SANITIZE=1 stops after the normal suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOESLIM_BUILD_TESTS=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
[ "${MOESLIM_SKIP_SANITIZE:-0}" = 1 ] && exit 0

echo "== the suite again under ASan + UBSan (build-sanitize/) =="
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOESLIM_SANITIZE=ON -DMOESLIM_BUILD_BENCH=OFF
cmake --build build-sanitize -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-sanitize --output-on-failure -j "$(nproc)" --timeout 900 -LE '^(quant_cli_test|w4a8_cli_test|quant_faults_test|quant_writes_report_test)$'
