#!/usr/bin/env bash
# Installs the browser the dashboard's end-to-end tests drive through chromedp: Debian's chromium package.
# Idempotent: does nothing when a Chromium binary is present (ROLLGUARD_CHROMIUM, or chromium on PATH).
# The tests start their own headless instance with a fresh profile; nothing here configures or starts it.
set -euo pipefail

if [[ -n "${ROLLGUARD_CHROMIUM:-}" && -x "${ROLLGUARD_CHROMIUM}" ]]; then
  echo "chromium: using ${ROLLGUARD_CHROMIUM}"
  exit 0
fi
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(command -v chromium) already installed"
  exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (a parallel test setup) instead of failing on its lock.
apt=(apt-get -o DPkg::Lock::Timeout=600)
$sudo "${apt[@]}" update -qq
# fonts-dejavu-core gives the screenshots legible glyphs; chromium's recommends (a full desktop) are skipped.
$sudo "${apt[@]}" install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
chromium --version
