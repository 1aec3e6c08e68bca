#!/usr/bin/env bash
# Installs the dependencies, builds, and starts llmassist-bot. With nothing configured it is a
# bot on this terminal that answers from the shipped knowledge base and stores everything in
# llmassist.db (in the current folder); set BOT_TOKEN, or pass --config FILE, for Telegram and
# your LLM providers. Arguments are passed to the bot; --help lists them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
exec "$root/build/examples/bot/llmassist-bot" "$@"
