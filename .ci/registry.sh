#!/usr/bin/env bash
# Installs the OCI distribution registry the registry tests run (Debian's docker-registry package, i.e.
# github.com/distribution/distribution v2.8). Idempotent: does nothing when a registry binary is present.
# The tests start their own instance on loopback with a temp config; the package service is not used.
set -euo pipefail

if [[ -n "${ROLLGUARD_REGISTRY_BIN:-}" && -x "${ROLLGUARD_REGISTRY_BIN}" ]]; then
  echo "registry: using ${ROLLGUARD_REGISTRY_BIN}"
  exit 0
fi
if command -v docker-registry >/dev/null 2>&1 || command -v registry >/dev/null 2>&1; then
  echo "registry: $(command -v docker-registry || command -v registry) already installed"
  exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
command -v docker-registry
docker-registry --version
