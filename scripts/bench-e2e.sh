#!/usr/bin/env bash
# Measures the whole request path, client -> prep (HTTP) -> pred (gRPC) ->
# ONNX Runtime and back, on loopback, for the generated ResNet-50 and the
# colors model at 1, 4 and 16 concurrent clients, and beside it the
# in-process limit of the same work without any network:
#   limit = 1 / (prep's preprocessing time + pred's in-process inference time)
# where preprocessing is imageprep on the same image with the spec pred
# announces (prepbench preprocess, one core) and inference is pred's
# registry + batcher + ONNX Runtime on one image (BenchmarkInProcessResNet50,
# BenchmarkInProcessColors). Prints a Markdown table with images/s, p50/p99
# latency, the ratio to the limit and the load average at each measurement.
#
#   scripts/bench-e2e.sh                      200 requests per concurrency
#   N=500 LEVELS=1,4,16,32 scripts/bench-e2e.sh
#   IMAGE=testdata/images/photo-1024x768.jpg scripts/bench-e2e.sh
#
# Loopback only; every measurement is bounded by a request count (N) and a
# time (MAX_TIME per concurrency). Run it on an otherwise idle machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
N="${N:-200}"
LEVELS="${LEVELS:-1,4,16}"
IMAGE="${IMAGE:-testdata/images/photo-500x375.jpg}"
MAX_TIME="${MAX_TIME:-120s}"
# START_TIMEOUT bounds the wait for each server to be ready, in seconds.
START_TIMEOUT="${START_TIMEOUT:-120}"

ort="$(scripts/install-onnxruntime.sh)"
scripts/gen-models.sh >/dev/null
work="$root/.cache/bench-e2e"
mkdir -p "$work"
go build -o "$work/pred" ./pred/cmd/pred
go build -o "$work/prep" ./prep/cmd/prep
go build -o "$work/prepbench" ./prep/cmd/prepbench

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

load() { cut -d' ' -f1 /proc/loadavg; }

# listening LOG FIELD: waits for the "listening" line in LOG and prints FIELD.
listening() {
	local deadline=$((SECONDS + START_TIMEOUT)) line
	while ((SECONDS < deadline)); do
		line="$(grep -m1 '"msg":"listening"' "$1" || true)"
		if [[ -n "$line" ]]; then
			sed -E 's/.*"'"$2"'":"([^"]+)".*/\1/' <<<"$line"
			return
		fi
		sleep 0.1
	done
	echo "no \"listening\" line in $1 within ${START_TIMEOUT}s:" >&2
	cat "$1" >&2
	exit 1
}

# ready URL: waits until URL answers 200.
ready() {
	local deadline=$((SECONDS + START_TIMEOUT))
	until curl -fs -o /dev/null --max-time 5 "$1"; do
		if ((SECONDS >= deadline)); then
			echo "$1 not ready within ${START_TIMEOUT}s" >&2
			exit 1
		fi
		sleep 0.2
	done
}

: >"$work/pred.log"
"$work/pred" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --model-repository models --ort-lib "$ort" \
	>"$work/pred.log" 2>&1 &
pids+=($!)
grpc="$(listening "$work/pred.log" grpc_addr)"
ready "http://$(listening "$work/pred.log" http_addr)/v2/health/ready"

models=(resnet50 colors)
declare -A url
for m in "${models[@]}"; do
	: >"$work/prep-$m.log"
	"$work/prep" --http-addr 127.0.0.1:0 --pred-address "$grpc" --model "$m" >"$work/prep-$m.log" 2>&1 &
	pids+=($!)
	url[$m]="http://$(listening "$work/prep-$m.log" http_addr)"
	ready "${url[$m]}/ready"
done

results="$work/results.txt"
: >"$results"
echo "# cpu: $(nproc) cores; image: $IMAGE; $N requests per concurrency" | tee -a "$results"
for m in "${models[@]}"; do
	"$work/prepbench" load -url "${url[$m]}" -image "$IMAGE" -c "$LEVELS" -n "$N" -max-time "$MAX_TIME" |
		while read -r line; do echo "$line load=$(load)"; done | tee -a "$results"
	line="$("$work/prepbench" preprocess -pred "$grpc" -model "$m" -image "$IMAGE" -n "$N")"
	echo "$line load=$(load)" | tee -a "$results"
done
cleanup
pids=()

# pred's in-process inference, with the servers stopped.
ONNXRUNTIME_LIB="$ort" go test -run '^$' -bench '^BenchmarkInProcess(ResNet50|Colors)$' -benchtime "${N}x" \
	./pred/internal/predservice/ | grep '^BenchmarkInProcess' |
	while read -r line; do echo "$line load=$(load)"; done | tee -a "$results"

echo
awk '
	function field(name,   i, kv) {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
		return ""
	}
	/^load / {
		m = field("model"); n = ++rows[m]
		c[m, n] = field("c"); ips[m, n] = field("images_per_s"); p50[m, n] = field("p50_ms"); p99[m, n] = field("p99_ms")
		errs[m, n] = field("errors"); la[m, n] = field("load")
		if (!(m in seen)) { seen[m] = 1; order[++nm] = m }
	}
	/^preprocess / { m = field("model"); pre[m] = field("mean_ms"); preload[m] = field("load") }
	/^BenchmarkInProcess/ {
		m = ($1 ~ /ResNet50/) ? "resnet50" : "colors"
		for (i = 2; i < NF; i++) if ($(i+1) == "ns/op") inf[m] = $i / 1e6
		infload[m] = field("load")
	}
	END {
		print "| model | clients | images/s | p50 ms | p99 ms | errors | limit images/s | ratio | load |"
		print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for (k = 1; k <= nm; k++) {
			m = order[k]
			limit = (pre[m] + inf[m] > 0) ? 1000 / (pre[m] + inf[m]) : 0
			for (n = 1; n <= rows[m]; n++)
				printf "| %s | %s | %.1f | %.2f | %.2f | %s | %.1f | %.2f | %s |\n", m, c[m, n], ips[m, n], p50[m, n], p99[m, n], errs[m, n], limit, (limit > 0 ? ips[m, n] / limit : 0), la[m, n]
		}
		print ""
		print "| model | preprocess ms (mean, one core) | inference ms (mean, in-process) | limit images/s | load |"
		print "| --- | --- | --- | --- | --- |"
		for (k = 1; k <= nm; k++) {
			m = order[k]
			printf "| %s | %.3f | %.3f | %.1f | %s / %s |\n", m, pre[m], inf[m], 1000 / (pre[m] + inf[m]), preload[m], infload[m]
		}
	}' "$results"
