#!/usr/bin/env bash
# The rollguard demo, run by `make demo` inside `sandbox run` (KUBECONFIG points at the sandbox cluster).
set -u
rg=${1:-rollguard}
here=$(cd "$(dirname "$0")" && pwd)

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }

step "Release 1.0.0: a healthy rollout" rollguard deploy -f demo/v1 --change-cause "web 1.0.0"
"$rg" deploy -f "$here/v1" --change-cause "web 1.0.0" --timeout 2m
echo "exit code: $?"

step "Release 1.1.0: its image cannot be pulled" rollguard deploy -f demo/v2-broken --timeout 5m
start=$(date +%s.%N)
"$rg" deploy -f "$here/v2-broken" --change-cause "web 1.1.0" --timeout 5m
code=$?
end=$(date +%s.%N)
took=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "exit code: $code after ${took}s of a 5m timeout (kubectl rollout status would have waited the full 5m)"

step "The same verdict for a rollout rollguard did not start" rollguard status deployment/web -n shop
"$rg" status deployment/web -n shop --timeout 1m
echo "exit code: $?"
