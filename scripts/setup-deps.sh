#!/usr/bin/env bash
# Installs what llmassist needs to build and test, from Debian's packages. Safe to run again:
# when everything is present it does nothing. Needs root (or sudo) to install.
#   scripts/setup-deps.sh            to build the library, the programs and the C++ tests
#   scripts/setup-deps.sh --browser  also Chromium, Node.js and playwright-core (npm ci in
#                                    tests/web), for the admin page's browser test
#   scripts/setup-deps.sh --fuzz     also clang and libFuzzer, for scripts/fuzz.sh
# The two flags can be given together.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
browser=0
fuzz=0
for flag in "$@"; do
  case "$flag" in
    --browser) browser=1 ;;
    --fuzz) fuzz=1 ;;
    *) echo "setup-deps: unknown flag $flag" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev libfmt-dev nlohmann-json3-dev doctest-dev
  libssl-dev libcurl4-openssl-dev libcpp-httplib-dev libsodium-dev libmicrohttpd-dev libjs-chart.js nghttp2-server
  libstemmer-dev libhnswlib-dev libmd-dev openssl
  python3-dev pybind11-dev
  # libpq: the PostgreSQL stores. The server and psql: the tests' own server
  # (tests/support/postgres_server.sh, a cluster in the build folder on a port of its own). The
  # package's install may also make and start Debian's cluster on port 5432; nothing of ours
  # uses it.
  libpq-dev postgresql-15 postgresql-client-15
)
if [ $browser -eq 1 ]; then
  # fonts-liberation is only recommended by chromium: without a font, pages render no text.
  packages+=(chromium fonts-liberation)
  # A Node.js installed otherwise (nodesource, nvm) is kept: Debian's would replace it.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi
# clang 14 with its libFuzzer and sanitizer runtimes (Debian 12's clang).
if [ $fuzz -eq 1 ]; then
  packages+=(clang libfuzzer-14-dev libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-deps: run as root, or install sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# playwright-core, at the version tests/web/package-lock.json pins, when it is not there yet.
# Without the npm registry this fails: the browser test is then skipped (an error in CI).
web="$root/tests/web"
if [ $browser -eq 1 ] && { [ ! -d "$web/node_modules/playwright-core" ] ||
                           [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; }; then
  echo "setup-deps: npm ci in tests/web"
  npm ci --prefix "$web" --no-audit --no-fund --loglevel=error ||
    echo "setup-deps: npm ci failed; the admin page's browser test cannot run" >&2
fi
