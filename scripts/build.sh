#!/usr/bin/env bash
# Configures and builds llmassist. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# The default folder is build/. Set LLMASSIST_WERROR=ON to turn warnings into errors.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
shift || true
# Debian's Python, whose headers and pybind11 the bindings are built against, even when another
# python3 comes first on PATH.
python=()
[ -x /usr/bin/python3 ] && python=(-DPython_EXECUTABLE=/usr/bin/python3)
cmake -S "$root" -B "$build" -G Ninja -DLLMASSIST_WERROR="${LLMASSIST_WERROR:-OFF}" \
  "${python[@]}" "$@" >/dev/null
cmake --build "$build" --parallel "$(nproc)"
