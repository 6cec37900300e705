#!/usr/bin/env bash
# Installs the Debian packages the sandbox's real node needs (see docs/sandbox.md, "The real node"):
# libseccomp-dev and pkg-config (runc is built from the Go module proxy with seccomp), the CNI plugins
# (bridge, host-local, loopback in /usr/lib/cni), the registry server the node pulls from, and iproute2
# (the bridge is deleted with `ip`). Idempotent: installs only what is missing.
set -euo pipefail

need=()
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev pkg-config)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
if [[ -z "${ROLLGUARD_REGISTRY_BIN:-}" ]] && ! command -v docker-registry >/dev/null 2>&1 && ! command -v registry >/dev/null 2>&1; then
  need+=(docker-registry)
fi
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)

if [[ ${#need[@]} -eq 0 ]]; then
  echo "realnode: libseccomp-dev, pkg-config, CNI plugins, registry and ip already installed"
  exit 0
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    # The real-node tests then fail (CI) or skip (elsewhere) naming what is missing.
    echo "realnode: not root and no sudo; cannot install ${need[*]}" >&2
    exit 0
  fi
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "realnode: installing ${need[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
