#!/usr/bin/env bash
# Makes the base images that pred/Dockerfile and prep/Dockerfile start from
# (debian:bookworm-slim and golang:1.26-bookworm) locally, for machines that
# reach Debian's archive and the Go module proxy but no image registry.
#
#   scripts/build-local-base.sh            # uses the engine at $DOCKER_HOST
#
# debian:bookworm-slim is a debootstrap minbase of bookworm, slimmed as the
# official -slim images are (debuerreotype-slimify: dpkg path-excludes for
# documentation, manual pages and translations, their files removed, apt's
# caches and lists emptied and kept empty), imported with `docker import`:
# about 75 MB, as the registry's. golang:1.26-bookworm adds gcc, curl and git to it, the
# Go toolchain of this machine (`go env GOROOT`) and the extra certificate
# authorities this machine trusts (/usr/local/share/ca-certificates), so
# builds behind a TLS-inspecting proxy download what they need. Both tags shadow the
# registry's images on this engine only. Needs root (debootstrap).
# Idempotent: an existing tag is kept; REBUILD=1 makes both again.
set -euo pipefail

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-docker}"

fail() { echo "build-local-base: $*" >&2; exit 1; }
has_image() { [[ -z "${REBUILD:-}" ]] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# slimify applies what the official -slim images apply to a minbase rootfs:
# dpkg no longer installs documentation, manual pages or translations (only
# the copyright files and locale.alias stay), what debootstrap installed of
# them is removed, and apt deletes its package caches after every run.
slimify() {
  local root="$1"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
# Like the official debian:*-slim images: no documentation, manual pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$root/usr/share/doc" -mindepth 1 -depth ! -name copyright ! -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -depth ! -name locale.alias -delete 2>/dev/null || true
  local d
  for d in groff info linda lintian/overrides man; do
    [[ -d "$root/usr/share/$d" ]] && find "$root/usr/share/$d" -mindepth 1 -delete
  done
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/archives/partial/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/apt/* "$root"/var/log/*.log
}

command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install debootstrap)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! has_image debian:bookworm-slim; then
  echo "build-local-base: debootstrap bookworm (minbase) from $MIRROR" >&2
  debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  slimify "$work/rootfs"
  tar -C "$work/rootfs" --numeric-owner -c . |
    "$DOCKER" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  echo "build-local-base: debian:bookworm-slim ready" >&2
fi

if ! has_image golang:1.26-bookworm; then
  goroot="$(go env GOROOT)"
  case "$(go env GOVERSION)" in go1.26*) ;; *) fail "go env GOVERSION is $(go env GOVERSION), want go1.26.x" ;; esac
  mkdir -p "$work/golang/ca"
  cp -a "$goroot" "$work/golang/go"
  cp /usr/local/share/ca-certificates/*.crt "$work/golang/ca/" 2>/dev/null || true
  cat >"$work/golang/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl git gcc libc6-dev make pkg-config; \
    rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY go /usr/local/go
ENV GOLANG_VERSION=local GOTOOLCHAIN=local GOPATH=/go \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
DOCKERFILE
  echo "build-local-base: building golang:1.26-bookworm with $(go env GOVERSION)" >&2
  "$DOCKER" build --network host -t golang:1.26-bookworm "$work/golang" >"$work/golang.log" 2>&1 ||
    { tail -20 "$work/golang.log" >&2; fail "docker build of golang:1.26-bookworm failed"; }
  echo "build-local-base: golang:1.26-bookworm ready" >&2
fi
