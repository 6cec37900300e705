#!/usr/bin/env bash
# The rollguard demo, run by `make demo` inside `sandbox run` (KUBECONFIG points at the sandbox cluster).
set -u
rg=${1:-rollguard}
here=$(cd "$(dirname "$0")" && pwd)

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

step "Release 1.0.0: a healthy rollout" rollguard deploy -f demo/v1 --change-cause "web 1.0.0"
"$rg" deploy -f "$here/v1" --change-cause "web 1.0.0" --timeout 2m
echo "exit code: $?"

step "Release 1.1.0: its image cannot be pulled; rollguard says why and rolls back" \
	rollguard deploy -f demo/v2-broken --change-cause "web 1.1.0" --timeout 5m
start=$(date +%s.%N)
"$rg" deploy -f "$here/v2-broken" --change-cause "web 1.1.0" --timeout 5m
code=$?
echo "exit code: $code (1 = failed and rolled back healthy) after $(seconds "$start" "$(date +%s.%N)")s of a 5m timeout;"
echo "kubectl rollout status would still be waiting for the timeout, and then roll back blind."

step "Who deployed what, when, and how it ended" rollguard history deployment/web -n shop
"$rg" history deployment/web -n shop
