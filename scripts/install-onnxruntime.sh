#!/usr/bin/env bash
# Installs Microsoft's official CPU build of ONNX Runtime (libonnxruntime.so)
# into .cache/onnxruntime/<version>/ and prints the library's path on stdout.
#
# The library comes from the npm package onnxruntime-node, which ships the
# same libonnxruntime.so.1 as Microsoft's GitHub release for linux/x64. The
# version matches the C API that github.com/yalue/onnxruntime_go v1.27.0 is
# built against (ORT_API_VERSION 24), and both the package and the library
# are checked against pinned SHA-256 sums.
#
# ONNXRUNTIME_LIB=/path/to/libonnxruntime.so  use that library instead (e.g. a
#                                             GPU build); nothing is downloaded.
# Idempotent: a verified library already in place is reused.
set -euo pipefail

ORT_VERSION=1.24.3
PKG_SHA256=aa1bb5fa261ea68de05dd53efbba210cd7adf2d2850f4c3a201054c74cc78040
LIB_SHA256=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682
PKG_URL="https://registry.npmjs.org/onnxruntime-node/-/onnxruntime-node-${ORT_VERSION}.tgz"
LIB_IN_PKG=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

fail() { echo "install-onnxruntime: $*" >&2; exit 1; }

if [[ -n "${ONNXRUNTIME_LIB:-}" ]]; then
  [[ -f "$ONNXRUNTIME_LIB" ]] || fail "ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB does not exist"
  echo "$ONNXRUNTIME_LIB"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) fail "no pinned CPU build for $(uname -s)/$(uname -m); download ONNX Runtime ${ORT_VERSION} from https://github.com/microsoft/onnxruntime/releases and set ONNXRUNTIME_LIB" ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/onnxruntime/$ORT_VERSION"
lib="$dir/libonnxruntime.so.1"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$lib" && "$(sha "$lib")" == "$LIB_SHA256" ]]; then
  echo "$lib"
  exit 0
fi

mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "install-onnxruntime: downloading onnxruntime-node ${ORT_VERSION} (about 85 MB)" >&2
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$PKG_URL" || fail "download of $PKG_URL failed"
else
  (cd "$tmp" && npm pack --silent "onnxruntime-node@${ORT_VERSION}" >/dev/null) || fail "npm pack onnxruntime-node@${ORT_VERSION} failed"
  mv "$tmp"/onnxruntime-node-*.tgz "$tmp/pkg.tgz"
fi
got="$(sha "$tmp/pkg.tgz")"
[[ "$got" == "$PKG_SHA256" ]] || fail "checksum mismatch for onnxruntime-node-${ORT_VERSION}.tgz: got $got, want $PKG_SHA256"

tar -xzf "$tmp/pkg.tgz" -C "$tmp" "$LIB_IN_PKG" || fail "$LIB_IN_PKG missing from the package"
got="$(sha "$tmp/$LIB_IN_PKG")"
[[ "$got" == "$LIB_SHA256" ]] || fail "checksum mismatch for libonnxruntime.so.1: got $got, want $LIB_SHA256"

mv -f "$tmp/$LIB_IN_PKG" "$lib"
echo "$lib"
