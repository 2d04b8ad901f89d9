#!/usr/bin/env bash
# Generates the model repository's synthetic models (resnet50, colors,
# squares) into models/ at the repository root. The output is deterministic.
#   scripts/gen-models.sh                   generate what is missing or stale
#   scripts/gen-models.sh --force           regenerate everything
#   scripts/gen-models.sh -model colors     only the named model(s)
# Idempotent: a complete model from the current generator is kept.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
exec go run ./pred/cmd/genmodels -out "$root/models" "$@"
