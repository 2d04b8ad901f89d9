#!/usr/bin/env bash
# Makes sure the system packages one of the README's commands needs are
# present, and installs the missing ones from Debian's archive when it may.
#
#   scripts/install-deps.sh build        gcc + libjpeg-turbo and zlib headers (prep's cgo): make run, make test
#   scripts/install-deps.sh golden       Pillow + numpy for the golden tensors: make golden
#   scripts/install-deps.sh test         golden's, and Chromium for the web page test: make test
#                                        (not Chromium with PREPRED_SKIP_BROWSER=1)
#   scripts/install-deps.sh bench-python FastAPI, uvicorn, grpcio, protobuf, Pillow and numpy for the
#                                        Python prep service: scripts/bench-python-prep.sh
#   scripts/install-deps.sh containers   Docker engine + Compose, debootstrap (local base images): make test-containers
#   scripts/install-deps.sh k8s          etcd, containerd, runc, CNI plugins, iptables, openssl, conntrack
#                                        and the containers set (images): make test-k8s
#
# Each requirement is checked by what it provides (a header, a Python
# module, a binary), not by package name, so a machine that has them from
# elsewhere installs nothing. What is missing is installed with apt-get when
# this runs as root or with sudo that needs no password; otherwise the
# script stops at once with one line naming the packages and the command.
# Quiet when nothing is missing.
set -euo pipefail

fail() { echo "install-deps: $*" >&2; exit 1; }

# python is the interpreter the golden and Pillow scripts run: Debian's,
# where python3-pil and python3-numpy install (not a pyenv or venv first on PATH).
python=/usr/bin/python3

# has_header reports whether the C compiler finds the header.
has_header() { printf '#include <%s>\n' "$1" | gcc -E -x c - >/dev/null 2>&1; }
has_cmd() { command -v "$1" >/dev/null 2>&1; }
has_py() { [[ -x "$python" ]] && "$python" -c "import $1" >/dev/null 2>&1; }
has_chromium() {
  [[ -n "${PREPRED_CHROMIUM:-}" ]] && return 0
  local name
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    has_cmd "$name" && return 0
  done
  return 1
}
has_compose() { docker compose version >/dev/null 2>&1 || has_cmd docker-compose; }
has_file() { [[ -e "$1" ]]; }

missing=()
need() { # package check...
  local pkg="$1"
  shift
  "$@" || missing+=("$pkg")
}

case "${1:-}" in
  build)
    need gcc has_cmd gcc
    need libc6-dev has_header stdio.h
    need libjpeg62-turbo-dev has_header jpeglib.h
    need zlib1g-dev has_header zlib.h
    need libdeflate-dev has_header libdeflate.h
    ;;
  golden | test)
    need python3-pil has_py PIL
    need python3-numpy has_py numpy
    if [[ "$1" == test && "${PREPRED_SKIP_BROWSER:-}" != 1 ]]; then
      need chromium has_chromium
    fi
    ;;
  bench-python)
    need python3-fastapi has_py fastapi
    need python3-uvicorn has_py uvicorn
    need python3-grpcio has_py grpc
    need python3-protobuf has_py google.protobuf
    need python3-pil has_py PIL
    need python3-numpy has_py numpy
    ;;
  containers | k8s)
    need docker.io has_cmd dockerd
    need docker-compose has_compose
    need debootstrap has_cmd debootstrap
    if [[ "$1" == k8s ]]; then
      need etcd-server has_cmd etcd
      need containerd has_cmd containerd
      need runc has_cmd runc
      need containernetworking-plugins has_file /usr/lib/cni/bridge
      need iptables has_cmd iptables
      need conntrack has_cmd conntrack
      need openssl has_cmd openssl
      need iproute2 has_cmd ip
    fi
    ;;
  *) fail "usage: $0 build|golden|test|bench-python|containers|k8s" ;;
esac
((${#missing[@]})) || exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif has_cmd sudo && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  fail "missing Debian packages ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
fi
has_cmd apt-get || fail "missing ${missing[*]} and no apt-get to install them with; install them with your system's package manager"

echo "install-deps: installing ${missing[*]}" >&2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The package lists of a new machine are empty: read them once, then install.
if ! { "${sudo[@]}" apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -20 "$log" >&2
  fail "apt-get install ${missing[*]} failed"
fi
