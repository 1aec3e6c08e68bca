#!/usr/bin/env bash
# Remakes the admin page's screenshots, docs/images/admin-queue.png, admin-queue-phone.png and
# admin-dashboard.png: runs the browser test (tests/admin_page_test.cpp) with SCREENSHOT_DIR set.
# Usage: scripts/screenshots.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-deps.sh" --browser
"$root/scripts/build.sh" "$root/build"
mkdir -p "$root/docs/images"
SCREENSHOT_DIR="$root/docs/images" LLMASSIST_REQUIRE_BROWSER=1 \
  "$root/build/tests/llmassist-tests" --test-case="admin page:*"
