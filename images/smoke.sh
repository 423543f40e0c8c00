#!/usr/bin/env bash
# Smoke check of the local container runtime: builds the test-agent image, runs it locked down the way
# agents are (own --internal network without DNS, read-only rootfs, no capabilities, no-new-privileges,
# non-root, pids and memory limits), checks from the host that it is healthy and cannot write its rootfs,
# makes it crash, and removes everything it made. Prints the measured times.
#
# Network safety: traffic goes only to loopback and to addresses of the network this script creates with an
# explicit --subnet and --gateway, and only after route-check confirms they are on its podman bridge. Every
# wait is bounded in tries and in time.
# shellcheck source=../scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

NET=deployclaw-smoke
SUBNET=10.89.77.0/24
GATEWAY=10.89.77.1
AGENT_IP=10.89.77.10
UNUSED_IP=10.89.77.11   # on the smoke network, nothing there: the agent's failed connect stays on the bridge
CTR=deployclaw-smoke-agent
IMAGE=localhost/deployclaw/test-agent:latest
PORT=8080

now_ms() { date +%s%3N; }

# ../shared/tools/route-check where the workplace provides it; otherwise the same rule inline: the address is
# loopback, or `ip route get` sends it straight out of a podman bridge (no gateway hop).
route_check() {
  local tool="$ROOT/../shared/tools/route-check"
  if [ -x "$tool" ]; then "$tool" "$@"; return; fi
  local a r dev
  for a in "$@"; do
    case "$a" in 127.*|::1) continue ;; esac
    r=$(ip route get "$a" 2>/dev/null | head -n 1)
    dev=$(grep -oE ' dev [^ ]+' <<<"$r" | awk '{print $2}')
    case "$dev" in cni-podman*|podman*|lo) ;; *) echo "route-check: $a is routed via '${dev:-nothing}': refusing" >&2; return 1 ;; esac
    if grep -q ' via ' <<<"$r"; then echo "route-check: $a goes via a gateway ($r): refusing" >&2; return 1; fi
  done
}

cleanup() {
  podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
  podman network rm -f "$NET" >/dev/null 2>&1 || true
}

FAILED=0
check() {   # check NAME EXPECTED ACTUAL: passes when ACTUAL contains EXPECTED
  if [[ "$3" == *"$2"* ]]; then
    printf '  ok    %-44s %s\n' "$1" "$3"
  else
    printf '  FAIL  %-44s %s (wanted %s)\n' "$1" "$3" "$2"
    FAILED=1
  fi
}

# One request to the agent, at most 5 s.
agent() { curl -sS --max-time 5 "$@" 2>&1 || true; }

ensure_container_runtime
t0=$(now_ms)
"$ROOT/images/build.sh" test-agent
build_ms=$(( $(now_ms) - t0 ))

cleanup   # leftovers of an interrupted earlier run
trap cleanup EXIT
log "creating network $NET ($SUBNET, gateway $GATEWAY, internal, no DNS)"
podman network create --subnet "$SUBNET" --gateway "$GATEWAY" --internal --disable-dns "$NET" >/dev/null

log "starting $CTR on $AGENT_IP"
# The group is explicit: `--user 65534` alone replaces the image's 65534:65534 and leaves the process in gid 0.
t0=$(now_ms)
podman run -d --name "$CTR" --network "$NET" --ip "$AGENT_IP" \
  --read-only --cap-drop=ALL --security-opt no-new-privileges --user 65534:65534 \
  --pids-limit 64 --memory 64m -e PORT="$PORT" "$IMAGE" >/dev/null
run_ms=$(( $(now_ms) - t0 ))

# The bridge exists only now that a container is attached: check the routes before any request.
route_check "$AGENT_IP" "$UNUSED_IP" "$GATEWAY" || die "the smoke network is not routed via its podman bridge; sending nothing"

healthy_ms=""
deadline=$((SECONDS + 20))
for try in $(seq 1 20); do
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || break
  if curl -fsS --max-time "$(( left < 5 ? left : 5 ))" "http://$AGENT_IP:$PORT/healthz" 2>/dev/null | grep -q '"ok":true'; then
    healthy_ms=$(( $(now_ms) - t0 ))
    break
  fi
  sleep 0.2
done
[ -n "$healthy_ms" ] || { podman logs "$CTR" >&2 || true; die "test-agent was not healthy within 20 s ($try tries)"; }

log "checks (from the host to $AGENT_IP, and from inside the agent)"
check "healthz" '{"ok":true}' "$(agent "http://$AGENT_IP:$PORT/healthz")"
check "rootfs is read-only (/probe/write?path=/x)" '"written":false' \
  "$(agent "http://$AGENT_IP:$PORT/probe/write?path=/x")"
check "runs as 65534, no capabilities, no_new_privs" \
  '{"uid":65534,"gid":65534,"euid":65534,"egid":65534,"cap_eff":"0000000000000000","no_new_privs":true' \
  "$(agent "http://$AGENT_IP:$PORT/probe/whoami")"
check "sees only its own process" '{"pids":[1],"count":1' "$(agent "http://$AGENT_IP:$PORT/probe/processes")"
check "connect to its own loopback" '"connected":true' \
  "$(agent "http://$AGENT_IP:$PORT/connect?host=127.0.0.1&port=$PORT&timeout_ms=1000")"
check "connect to an empty address on its network" '"connected":false' \
  "$(agent "http://$AGENT_IP:$PORT/connect?host=$UNUSED_IP&port=$PORT&timeout_ms=1000")"
check "Docker API sees it read-only" '"ReadonlyRootfs":true' "$(curl -sS --max-time 5 --unix-socket \
  "${DOCKER_HOST#unix://}" "http://d/containers/$CTR/json" 2>&1 | grep -o '"ReadonlyRootfs":[a-z]*' || true)"
check "POST /crash answers" '"crashing":true' "$(agent -X POST "http://$AGENT_IP:$PORT/crash")"
status=$(timeout 10 podman wait "$CTR" 2>&1 || true)
check "exit status after crash" "exit 3" "exit $status"

echo
log "timings"
printf '  %6s ms  image build (images/build.sh test-agent, incl. cargo)\n' "$build_ms"
printf '  %6s ms  podman run -d returned\n' "$run_ms"
printf '  %6s ms  container start to healthy (%s health tries)\n' "$healthy_ms" "$try"
[ "$FAILED" -eq 0 ] || die "smoke check failed"
log "smoke check passed; removing $CTR and $NET"
