#!/usr/bin/env bash
# Measures pred in one run on the generated ResNet-50, with the thread
# settings of its config everywhere:
#   (a) ONNX Runtime in-process, one image at a time (pred's floor),
#   (b) pred over its native gRPC API, batch 1, one client,
#   (c) pred over the Open Inference Protocol gRPC (ModelInfer), batch 1, one client,
#   (d) pred under concurrent clients (default 8), with the config's dynamic
#       batching and with a copy of the model without it,
# and pred's resident memory (VmRSS) after 1,000 and 20,000 requests of the
# colors model and after more ResNet-50 requests. Prints a Markdown report
# with images/s, p50 and p99 latency per case and the load average.
#
#   scripts/bench-pred.sh                          everything (a few minutes on 2 cores)
#   scripts/bench-pred.sh -requests 50 -cases ort,grpc
#   scripts/bench-pred.sh -h                       all options
#
# Loopback only; every case is bounded by a request count and -case-timeout.
# Run it on an otherwise idle machine: the load average is in the report.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ort="$(scripts/install-onnxruntime.sh)"
scripts/gen-models.sh >/dev/null
mkdir -p .cache/bench
go build -o .cache/bench/pred ./pred/cmd/pred
go build -o .cache/bench/predbench ./pred/cmd/predbench
exec .cache/bench/predbench -pred-bin .cache/bench/pred -ort-lib "$ort" -model-repository models -work-dir .cache/bench "$@"
