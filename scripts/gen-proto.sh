#!/usr/bin/env bash
# Regenerates the Go code in api/gen from api/proto with pinned tool versions.
#   scripts/gen-proto.sh          regenerate in place
#   scripts/gen-proto.sh --check  fail if regeneration would change api/gen
# Tools are installed with `go install` into .cache/tools (no protoc needed:
# buf compiles the protos itself).
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/tools/bin"
mkdir -p "$bin"

install_tool() { # name module version
  local stamp="$bin/.$1-$3"
  if [[ ! -x "$bin/$1" || ! -f "$stamp" ]]; then
    echo "gen-proto: installing $2@$3" >&2
    GOBIN="$bin" GOWORK=off go install "$2@$3"
    rm -f "$bin/.$1-"*
    touch "$stamp"
  fi
}
install_tool buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
export PATH="$bin:$PATH"

cd "$root/api"
if [[ "${1:-}" == "--check" ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  buf generate --output "$out"
  if ! diff -r "$out/gen" gen; then
    echo "gen-proto: api/gen is stale; run scripts/gen-proto.sh and commit the result" >&2
    exit 1
  fi
  echo "gen-proto: api/gen is up to date" >&2
  exit 0
fi
rm -rf gen
buf lint
buf generate
