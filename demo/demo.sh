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

# The guard: rollouts that rollguard did not start heal too.
kubectl=${KUBECTL:-kubectl}
step "The guard runs in the cluster (here as a process) and guards namespace shop" \
	"rollguard guard & kubectl label namespace shop rollguard.dev/guard=enabled"
guardlog=$(mktemp)
"$rg" guard -n shop --health-addr 0 --metrics-addr 0 --log-level info 2>"$guardlog" &
guard=$!
trap 'kill "$guard" 2>/dev/null; rm -f "$guardlog"' EXIT
"$kubectl" label namespace shop rollguard.dev/guard=enabled --overwrite

step "A teammate ships web 1.2.0 by hand; its image cannot be pulled" \
	kubectl set image deployment/web web=registry.example.com/shop/web:1.2.0 -n shop
# In the sandbox kwok plays the kubelet: the scenario label makes it fail the pull as a real node would.
# Pausing makes the label and the image one rollout (a paused Deployment is not a rollout for the guard).
"$kubectl" -n shop rollout pause deployment/web >/dev/null
"$kubectl" -n shop patch deployment/web --type json \
	-p '[{"op":"add","path":"/spec/template/metadata/labels/sandbox.rollguard.dev~1scenario","value":"image-pull-failure"}]' >/dev/null
"$kubectl" -n shop set image deployment/web web=registry.example.com/shop/web:1.2.0
start=$(date +%s.%N)
"$kubectl" -n shop rollout resume deployment/web >/dev/null
for _ in $(seq 1 240); do
	"$kubectl" -n shop get events --field-selector reason=RolledBack -o name 2>/dev/null | grep -q . && break
	sleep 0.5
done
echo "nobody ran rollguard; the guard healed web $(seconds "$start" "$(date +%s.%N)")s after the change:"

step "What the guard said, on the Deployment" kubectl get events -n shop --field-selector reportingComponent=rollguard-guard
"$kubectl" -n shop get events --field-selector reportingComponent=rollguard-guard \
	-o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

step "The guard's rollback is in the same history" rollguard history deployment/web -n shop
"$rg" history deployment/web -n shop
