#!/usr/bin/env bash
# Installs shellcheck (Debian's package), which the CI-template tests run through actionlint on every shell
# step of action.yml and examples/github/. Idempotent: does nothing when shellcheck is on PATH.
set -euo pipefail

if command -v shellcheck >/dev/null 2>&1; then
  echo "shellcheck: $(command -v shellcheck) already installed"
  exit 0
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
shellcheck --version | head -2
