#!/usr/bin/env bash
# Installs the dependencies, builds, and starts the console demo on an embedded SQLite database
# (llmassist-demo.db in the current folder). Arguments are passed to the program; --help lists
# them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
exec "$root/build/examples/store-demo/llmassist-store-demo" "$@"
