#!/usr/bin/env bash
# Headless Chromium for the browser test (test/integration/browser.test.ts), from Debian's `chromium` package.
# Idempotent: nothing happens when a Chromium is already there ($CHROMIUM_BIN, or chromium on PATH).
# Installs only as root with apt-get (CI); elsewhere it prints what to install and exits 0, and the browser test
# then reports itself as skipped, naming the reason (BROWSER_REQUIRED=1 turns that skip into a failure).
set -euo pipefail

log() { printf 'browser: %s\n' "$*" >&2; }

found() {
  if [ -n "${CHROMIUM_BIN:-}" ]; then [ -x "$CHROMIUM_BIN" ] && echo "$CHROMIUM_BIN"; return; fi
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

bin="$(found)"
if [ -n "$bin" ]; then
  log "using $bin ($("$bin" --version 2>/dev/null | head -1))"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "Chromium not found and cannot be installed here (needs root and apt-get)."
  log "Install it (Debian/Ubuntu: sudo apt-get install -y chromium) or set CHROMIUM_BIN; the browser test is skipped until then."
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log "installing Debian's chromium package (apt-get install -y chromium)"
if ! apt-get install -y --no-install-recommends chromium >&2; then
  log "install failed; running apt-get update and retrying"
  apt-get update >&2
  apt-get install -y --no-install-recommends chromium >&2
fi
bin="$(found)"
[ -n "$bin" ] || { log "chromium installed but not on PATH"; exit 1; }
log "installed $bin ($("$bin" --version 2>/dev/null | head -1))"
