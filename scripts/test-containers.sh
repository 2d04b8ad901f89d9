#!/usr/bin/env bash
# The container deployment tested for real (make test-containers): both
# images built with the project's Dockerfiles, the unchanged
# docker-compose.yml run on its default bridge network with
# --scale pred=2 --scale prep=2, and the checks of
# deploy/containers/containers_test.go (go test -tags containers): every prep
# answers the README's request, calls spread over both preds, a pred killed
# under load, preps replaced under load, a pred release with another
# preprocessing spec rolled in under load, and `down` leaving nothing behind.
#
#   scripts/test-containers.sh
#   scripts/test-containers.sh --save DIR
#
# With --save it only builds: the two images, and the second pred release
# the spec roll deploys (the pred image with the colors model written for
# BGR input, genmodels -colors-color-order BGR, which announces another
# PreprocessSpec), written as docker-save archives pred.tar, prep.tar and
# pred-release2.tar into DIR (scripts/test-k8s.sh imports them into its
# cluster); no checks run.
#
# Engine: the one $DOCKER_HOST (or the default socket) reaches; when none
# answers, Debian's docker.io is installed if missing and a dockerd of its
# own is started (data root .cache/test-containers/data, which keeps the base
# images and BuildKit's caches between runs; exec root, pid file and socket
# in a temporary directory) and stopped afterwards. Base images: pulled, or
# made by scripts/build-local-base.sh when no registry answers. Builds use
# host networking (module proxy, Debian's archive) and this machine's Go
# module cache as their first GOPROXY; nothing else does. prep publishes on
# PREPRED_TEST_PUBLISH (default 127.0.0.1:18000-18009).
#
# Installing packages needs root or passwordless sudo; without either the
# script stops at once naming the command to run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
save_dir=""
case "${1:-}" in
  "") ;;
  --save) [[ -n "${2:-}" ]] || { echo "usage: $0 [--save DIR]" >&2; exit 2; }; mkdir -p "$2"; save_dir="$(cd "$2" && pwd)" ;;
  *) echo "usage: $0 [--save DIR]" >&2; exit 2 ;;
esac
cd "$root"

PROJECT="${PREPRED_TEST_PROJECT:-prepredtest}"
PUBLISH="${PREPRED_TEST_PUBLISH:-127.0.0.1:18000-18009}"
# MODPROXY_PORT serves the local module cache to the builds on loopback; a
# fixed port keeps the build argument, and so BuildKit's cache key, stable.
MODPROXY_PORT="${PREPRED_TEST_MODPROXY_PORT:-37611}"
# Deadlines, in seconds.
ENGINE_START_S=90
ENGINE_STOP_S=60
LOCK_WAIT_S=1800
PULL_TIMEOUT_S=60

state="$root/.cache/test-containers"
mkdir -p "$state"

say() { echo "test-containers: $*" >&2; }
fail() { say "$*"; exit 1; }

# as_root runs a command as root: directly, or with passwordless sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

# ensure_packages installs the Debian packages whose command is missing
# (pairs "command:package").
ensure_packages() {
  local pair missing=()
  for pair in "$@"; do
    [[ -x "${pair%%:*}" ]] || command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  local cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $EUID -ne 0 ]] && ! sudo -n true 2>/dev/null; then
    fail "missing ${missing[*]}; run as root: apt-get update && $cmd"
  fi
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >"$state/apt.log" 2>&1 ||
    { as_root apt-get update >>"$state/apt.log" 2>&1 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$state/apt.log" 2>&1; } ||
    { tail -20 "$state/apt.log" >&2; fail "apt-get install ${missing[*]} failed"; }
}

# One run at a time per checkout: they share the data root and the ports.
exec 9>"$state/lock"
if ! flock -n 9; then
  say "another run holds $state/lock; waiting up to ${LOCK_WAIT_S}s"
  flock -w "$LOCK_WAIT_S" 9 || fail "another run still holds $state/lock"
fi

declare -A took=()
phase_start=$SECONDS
phase() { took[$1]=$((SECONDS - phase_start)); phase_start=$SECONDS; }

# ---- engine ----
# Debian's client has BuildKit built in (RUN --mount); a newer client needs
# the buildx plugin for it.
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker
  elif command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then DOCKER="$(command -v docker)"
  else ensure_packages /usr/bin/docker:docker.io; DOCKER=/usr/bin/docker
  fi
fi
export DOCKER DOCKER_BUILDKIT=1

run_dir=""
dockerd_pid=""
modproxy_pid=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "${compose_cmd:-}" ]] && "$DOCKER" info >/dev/null 2>&1; then
    PREP_PUBLISH="$PUBLISH" PREP_MODEL=colors "${compose_cmd[@]}" -p "$PROJECT" -f docker-compose.yml \
      down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1
    "$DOCKER" ps -aq --filter "label=prepred.test.project=$PROJECT" | xargs -r "$DOCKER" rm -f >/dev/null 2>&1
  fi
  [[ -n "$modproxy_pid" ]] && kill "$modproxy_pid" 2>/dev/null && wait "$modproxy_pid" 2>/dev/null
  if [[ -n "$dockerd_pid" ]]; then
    say "stopping dockerd"
    kill -TERM "$dockerd_pid" 2>/dev/null
    local deadline=$((SECONDS + ENGINE_STOP_S))
    while kill -0 "$dockerd_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -0 "$dockerd_pid" 2>/dev/null && { say "dockerd did not stop in ${ENGINE_STOP_S}s; killing it"; kill -KILL "$dockerd_pid"; }
    wait "$dockerd_pid" 2>/dev/null
    # Whatever the engine left mounted under its directories (it unmounts
    # on a clean stop), deepest first.
    awk -v a="$run_dir" -v b="$state/data" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts |
      sort -r | xargs -r -n1 umount -l 2>/dev/null
  fi
  [[ -n "$run_dir" ]] && rm -rf "$run_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if "$DOCKER" info >/dev/null 2>&1; then
  say "using the engine at ${DOCKER_HOST:-the default socket}"
else
  ensure_packages dockerd:docker.io
  run_dir="$(mktemp -d /tmp/prepred-dockerd.XXXXXX)"
  export DOCKER_HOST="unix://$run_dir/docker.sock"
  # --bridge none: the runs use Compose's own network, and docker0 stays
  # another engine's; the address pool keeps clear of Docker's default one.
  dockerd --data-root "$state/data" --exec-root "$run_dir/exec" --pidfile "$run_dir/dockerd.pid" \
    --host "$DOCKER_HOST" --bridge none --default-address-pool base=10.213.0.0/16,size=24 \
    >"$state/dockerd.log" 2>&1 &
  dockerd_pid=$!
  deadline=$((SECONDS + ENGINE_START_S))
  until "$DOCKER" info >/dev/null 2>&1; do
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$state/dockerd.log" >&2; fail "dockerd exited"; }
    ((SECONDS < deadline)) || { tail -20 "$state/dockerd.log" >&2; fail "dockerd did not answer in ${ENGINE_START_S}s"; }
    sleep 0.2
  done
  say "started dockerd (data root $state/data, socket $DOCKER_HOST)"
fi

if "$DOCKER" compose version >/dev/null 2>&1; then
  compose_cmd=("$DOCKER" compose)
else
  ensure_packages docker-compose:docker-compose
  compose_cmd=(docker-compose)
fi
phase engine

# ---- base images ----
if ! "$DOCKER" image inspect golang:1.26-bookworm >/dev/null 2>&1 ||
  ! "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1; then
  if timeout "$PULL_TIMEOUT_S" "$DOCKER" pull -q debian:bookworm-slim >/dev/null 2>&1 &&
    timeout "$((PULL_TIMEOUT_S * 5))" "$DOCKER" pull -q golang:1.26-bookworm >/dev/null 2>&1; then
    say "pulled the base images"
  else
    say "no registry answers; making the base images locally"
    ensure_packages debootstrap:debootstrap
    scripts/build-local-base.sh
  fi
fi
phase bases

# ---- images ----
build_args=()
gomodcache="$(go env GOMODCACHE 2>/dev/null || true)"
if [[ -d "$gomodcache/cache/download" ]] && command -v python3 >/dev/null &&
  ! (exec 3<>"/dev/tcp/127.0.0.1/$MODPROXY_PORT") 2>/dev/null; then
  python3 -m http.server --bind 127.0.0.1 --directory "$gomodcache/cache/download" "$MODPROXY_PORT" \
    >"$state/modproxy.log" 2>&1 &
  modproxy_pid=$!
  deadline=$((SECONDS + 10))
  until curl -fso /dev/null "http://127.0.0.1:$MODPROXY_PORT/"; do
    ((SECONDS < deadline)) || fail "the module cache server on 127.0.0.1:$MODPROXY_PORT did not start"
    sleep 0.1
  done
  build_args=(--build-arg "GOPROXY=http://127.0.0.1:$MODPROXY_PORT,$(go env GOPROXY)")
fi
for spec in "pred/Dockerfile prepred/pred:local" "prep/Dockerfile prepred/prep:local"; do
  read -r dockerfile tag <<<"$spec"
  say "building $tag"
  "$DOCKER" build --network host "${build_args[@]}" -f "$dockerfile" -t "$tag" . >"$state/build-${tag//[:\/]/-}.log" 2>&1 ||
    { tail -30 "$state/build-${tag//[:\/]/-}.log" >&2; fail "docker build of $tag failed (log: $state/build-${tag//[:\/]/-}.log)"; }
done
[[ -n "$modproxy_pid" ]] && { kill "$modproxy_pid"; wait "$modproxy_pid" 2>/dev/null || true; modproxy_pid=""; }
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' prepred/pred:local >&2
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' prepred/prep:local >&2
phase builds

if [[ -n "$save_dir" ]]; then
  say "building prepred/pred:release2 (colors model for BGR input)"
  rel2="$(mktemp -d)"
  go run ./pred/cmd/genmodels -out "$rel2/models" -model colors -colors-color-order BGR >"$state/release2.log" 2>&1 ||
    { tail -20 "$state/release2.log" >&2; fail "genmodels for release2 failed"; }
  printf 'FROM prepred/pred:local\nCOPY models/colors/ /models/colors/\n' >"$rel2/Dockerfile"
  "$DOCKER" build --network none -t prepred/pred:release2 "$rel2" >>"$state/release2.log" 2>&1 ||
    { tail -20 "$state/release2.log" >&2; fail "docker build of prepred/pred:release2 failed"; }
  rm -rf "$rel2"
  for spec in "prepred/pred:local pred" "prepred/prep:local prep" "prepred/pred:release2 pred-release2"; do
    read -r tag file <<<"$spec"
    "$DOCKER" save -o "$save_dir/$file.tar" "$tag"
  done
  phase save
  say "time: engine ${took[engine]}s, bases ${took[bases]}s, image builds ${took[builds]}s, save ${took[save]}s"
  say "images written to $save_dir"
  exit 0
fi

# ---- checks ----
say "running the checks (project $PROJECT, prep on $PUBLISH)"
checks_rc=0
PREPRED_TEST_DOCKER="$DOCKER" PREPRED_TEST_COMPOSE="${compose_cmd[*]}" PREPRED_TEST_PROJECT="$PROJECT" \
  PREPRED_TEST_PUBLISH="$PUBLISH" \
  go test -tags containers -count=1 -v -timeout 20m ./deploy/containers/ || checks_rc=$?
phase checks

say "time: engine ${took[engine]}s, bases ${took[bases]}s, image builds ${took[builds]}s, checks ${took[checks]}s"
((checks_rc == 0)) || fail "checks failed"
say "ok"
