#!/usr/bin/env bash
# Builds the fuzz targets (clang, libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer) in
# build-fuzz/ and runs each for SECONDS (default 60). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Each target starts from its seeds (fuzz/corpus/<name>/, the regression inputs under
# tests/data/fuzz-regressions/<name>/, and for Telegram the real updates of
# tests/data/telegram-updates/), read only: what it finds goes to a fresh folder under
# build-fuzz/, never into the repository. A crash, a leak, a timeout or a broken invariant fails
# the run; the input that caused it is kept in build-fuzz/artifacts/ and its path printed.
# docs/fuzzing.md says what each target checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
build="$root/build-fuzz"

"$root/scripts/setup-deps.sh" --fuzz
# Optimized, with assertions on (no NDEBUG: a failed assertion is a finding) and line tables
# for the sanitizers' stack traces (full debug information only slows the build).
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DLLMASSIST_BUILD_FUZZERS=ON \
  -DLLMASSIST_WERROR="${LLMASSIST_WERROR:-OFF}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -gline-tables-only" >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target fuzzers

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for program in "$build"/fuzz/*_fuzz; do
    name="$(basename "$program")"
    targets+=("${name%_fuzz}")
  done
fi

run="$build/fuzz-run"
artifacts="$build/artifacts"
rm -rf "$run"
mkdir -p "$run" "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()
summary=()
for name in "${targets[@]}"; do
  program="$build/fuzz/${name}_fuzz"
  [ -x "$program" ] || { echo "fuzz: no target $name" >&2; exit 2; }
  seeds=("$root/fuzz/corpus/$name")
  [ -d "$root/tests/data/fuzz-regressions/$name" ] && seeds+=("$root/tests/data/fuzz-regressions/$name")
  [ "$name" = telegram_updates ] && seeds+=("$root/tests/data/telegram-updates")
  options=(-max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048
           -print_final_stats=1 -artifact_prefix="$artifacts/$name-")
  [ -f "$root/fuzz/$name.dict" ] && options+=(-dict="$root/fuzz/$name.dict")
  mkdir -p "$run/$name"
  echo "== fuzz $name for ${seconds} s"
  status=0
  "$program" "${options[@]}" "$run/$name" "${seeds[@]}" >"$run/$name.log" 2>&1 || status=$?
  # The last status line: "#123456 DONE cov: 1234 ft: 5678 corp: ... exec/s: 4321 rss: ..."
  last="$(grep -E '^#[0-9]+' "$run/$name.log" | tail -n 1 || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  execs="$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$last")"
  runs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")"
  summary+=("$(printf '%-18s runs %-10s exec/s %-8s cov %s' "$name" "${runs:-?}" "${execs:-?}" "${cov:-?}")")
  if [ $status -ne 0 ]; then
    failed+=("$name")
    tail -n 60 "$run/$name.log" >&2
    input="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$run/$name.log" | tail -n 1)"
    echo "fuzz: $name FAILED (exit $status); the input: ${input:-see $run/$name.log}" >&2
    echo "fuzz: reproduce with $program ${input:-<input>}" >&2
  fi
done

echo "== fuzz summary (${seconds} s each; logs in $run)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
