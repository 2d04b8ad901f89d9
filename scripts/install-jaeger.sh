#!/usr/bin/env bash
# Installs Jaeger (all-in-one: OTLP receiver, in-memory storage, query API
# and UI) into .cache/tools/bin and prints its path. It is built from the
# tool dependency of the scripts/tools module (scripts/tools/go.mod pins
# github.com/jaegertracing/jaeger v1.75.0), which stays out of go.work so
# that Jaeger's dependencies never reach pred's and prep's builds. The
# tracing end-to-end test (prep/e2e) runs it; `make run-jaeger` starts it.
# Idempotent: a binary built from the pinned version is reused. A cold
# build takes about 10 minutes on 2 cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/tools/bin"
jaeger="$bin/jaeger"
want="$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$root/scripts/tools/go.mod")"

# installed_version prints the jaeger module version a binary was built from.
installed_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/jaegertracing/jaeger" { print $3 }'
}

if [[ -x "$jaeger" && "$(installed_version "$jaeger")" == "$want" ]]; then
  echo "$jaeger"
  exit 0
fi

mkdir -p "$bin"
echo "install-jaeger: building jaeger ${want} (about 10 minutes on 2 cores)" >&2
(cd "$root/scripts/tools" && GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
mv "$jaeger.tmp" "$jaeger"
got="$(installed_version "$jaeger")"
[[ "$got" == "$want" ]] || { echo "install-jaeger: built $jaeger reports version '$got', want $want" >&2; exit 1; }
echo "$jaeger"
