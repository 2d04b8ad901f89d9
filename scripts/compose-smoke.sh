#!/usr/bin/env bash
# Smoke test of the container deployment: builds both images, starts the
# Compose stack with host networking on loopback (no container network, no
# published port), waits for the health checks, classifies
# testdata/images/red.jpg with the colors model, and tears everything down.
#
#   scripts/compose-smoke.sh
#
# Needs a Docker engine ($DOCKER_HOST) with BuildKit and docker compose (or
# docker-compose). On a machine that cannot pull images, make the base
# images first: scripts/build-local-base.sh. Ports used on 127.0.0.1:
# 8000 (prep), 50051 and 8001 (pred).
set -euo pipefail

# READY_TIMEOUT_S bounds the wait for both services to become healthy.
READY_TIMEOUT_S="${READY_TIMEOUT_S:-300}"
PROJECT=prepred-smoke
DOCKER="${DOCKER:-docker}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fail() { echo "compose-smoke: $*" >&2; exit 1; }

if "$DOCKER" compose version >/dev/null 2>&1; then
  compose=("$DOCKER" compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  fail "neither docker compose nor docker-compose is installed"
fi
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/override.yml" <<'YAML'
# Host networking, every listener on loopback.
services:
  pred:
    build:
      network: host
    network_mode: host
    environment:
      PRED_GRPC_ADDR: 127.0.0.1:50051
      PRED_HTTP_ADDR: 127.0.0.1:8001
  prep:
    build:
      network: host
    network_mode: host
    environment:
      PREP_HTTP_ADDR: 127.0.0.1:8000
      PRED_ADDRESS: dns:///127.0.0.1:50051
      PREP_MODEL: colors
YAML
# A host-network container has no published ports: the engine ignores them,
# docker-compose 1.x refuses them, so for it the merged configuration is
# written out without prep's ports, with the PyYAML of its own interpreter.
if [[ "${compose[0]}" == docker-compose ]]; then
  py="$(sed -n '1s/^#! *//p' "$(command -v docker-compose)")"
  docker-compose -p "$PROJECT" -f docker-compose.yml -f "$work/override.yml" config |
    ${py:-python3} -c 'import sys, yaml; c = yaml.safe_load(sys.stdin); c["services"]["prep"].pop("ports", None); yaml.safe_dump(c, sys.stdout)' \
      >"$work/smoke.yml"
  files=(-p "$PROJECT" -f "$work/smoke.yml")
else
  files=(-p "$PROJECT" -f docker-compose.yml -f "$work/override.yml")
fi
cleanup() {
  "${compose[@]}" "${files[@]}" down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "compose-smoke: building and starting" >&2
"${compose[@]}" "${files[@]}" up --build --detach

# health prints the health state of the service's container.
health() {
  local id
  id="$("${compose[@]}" "${files[@]}" ps -q "$1")"
  [[ -n "$id" ]] || { echo missing; return; }
  "$DOCKER" inspect --format '{{.State.Health.Status}}' "$id"
}
deadline=$((SECONDS + READY_TIMEOUT_S))
until [[ "$(health pred)" == healthy && "$(health prep)" == healthy ]]; do
  if ((SECONDS > deadline)); then
    "${compose[@]}" "${files[@]}" logs --tail 50 >&2 || true
    fail "not healthy after ${READY_TIMEOUT_S}s: pred $(health pred), prep $(health prep)"
  fi
  sleep 2
done
echo "compose-smoke: pred and prep are healthy" >&2

curl -fsS http://127.0.0.1:8000/ready
echo
body="$work/body.json"
printf '{"data": "%s"}' "$(base64 -w0 testdata/images/red.jpg)" >"$body"
answer="$(curl -fsS -X POST -H 'Content-Type: application/json' --data-binary @"$body" http://127.0.0.1:8000/predict/label)"
echo "$answer"
[[ "$answer" == *'"red"'* ]] || fail "red.jpg was not classified as red: $answer"
curl -fsS -o "$work/metrics" http://127.0.0.1:8001/metrics
grep -q '^# TYPE ' "$work/metrics" || fail "pred /metrics has no metrics"
echo "compose-smoke: ok" >&2
