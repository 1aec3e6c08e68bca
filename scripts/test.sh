#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the whole test suite.
#   scripts/test.sh            the normal build, in build/
#   scripts/test.sh --sanitize AddressSanitizer + UndefinedBehaviorSanitizer, in build-asan/
# The admin page's browser test runs when Chromium, node and tests/web/node_modules are there
# (setup-deps --browser installs them); LLMASSIST_REQUIRE_BROWSER=1 makes their absence an error.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-deps.sh" --browser

if [ "${1:-}" = "--sanitize" ]; then
  build="$root/build-asan"
  "$root/scripts/build.sh" "$build" -DLLMASSIST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
  build="$root/build"
  "$root/scripts/build.sh" "$build"
fi
cd "$build"
ctest --output-on-failure --parallel "$(nproc)" --timeout 600
