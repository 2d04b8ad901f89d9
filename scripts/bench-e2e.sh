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
#
# TRACING=compare measures what OpenTelemetry tracing costs instead: two
# pred+prep pairs serving ResNet-50, one with tracing off and one tracing
# every request (OTEL_TRACES_SAMPLER=always_on) to a Jaeger in memory
# (scripts/install-jaeger.sh), loaded in alternating rounds (ROUNDS, default
# 3; LEVELS default 1,4) so that drift of a shared machine hits both alike.
# It prints each round and the ratio on/off of throughput and p50 latency.
#
#   TRACING=compare scripts/bench-e2e.sh
#   TRACING=compare ROUNDS=5 N=300 LEVELS=4 scripts/bench-e2e.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
N="${N:-200}"
user_levels="${LEVELS:-}"
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

if [[ "${TRACING:-}" == compare ]]; then
	ROUNDS="${ROUNDS:-3}"
	LEVELS="${user_levels:-1,4}"
	jaeger="$(scripts/install-jaeger.sh)"
	read -r qport gport hport < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
	cat >"$work/jaeger.yaml" <<-EOF
		service:
		  extensions: [jaeger_storage, jaeger_query]
		  pipelines:
		    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
		  telemetry:
		    metrics: {level: none}
		extensions:
		  jaeger_query:
		    storage: {traces: memstore}
		    http: {endpoint: "127.0.0.1:$qport"}
		    grpc: {endpoint: "127.0.0.1:0"}
		  jaeger_storage:
		    backends:
		      memstore: {memory: {max_traces: 20000}}
		receivers:
		  otlp:
		    protocols:
		      grpc: {endpoint: "127.0.0.1:$gport"}
		      http: {endpoint: "127.0.0.1:$hport"}
		processors:
		  batch:
		exporters:
		  jaeger_storage_exporter: {trace_storage: memstore}
	EOF
	"$jaeger" --config "$work/jaeger.yaml" >"$work/jaeger.log" 2>&1 &
	pids+=($!)
	declare -A cpu_pid=([jaeger]=$!)
	ready "http://127.0.0.1:$qport/api/services"
	declare -A turl
	for mode in off on; do
		env=(env OTEL_SDK_DISABLED=true)
		if [[ $mode == on ]]; then
			env=(env OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$hport" OTEL_TRACES_SAMPLER=always_on)
		fi
		: >"$work/pred-$mode.log"
		"${env[@]}" "$work/pred" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --model-repository models --ort-lib "$ort" \
			>"$work/pred-$mode.log" 2>&1 &
		pids+=($!)
		cpu_pid[pred-$mode]=$!
		g="$(listening "$work/pred-$mode.log" grpc_addr)"
		ready "http://$(listening "$work/pred-$mode.log" http_addr)/v2/health/ready"
		: >"$work/prep-$mode.log"
		"${env[@]}" "$work/prep" --http-addr 127.0.0.1:0 --pred-address "$g" --model resnet50 >"$work/prep-$mode.log" 2>&1 &
		pids+=($!)
		cpu_pid[prep-$mode]=$!
		turl[$mode]="http://$(listening "$work/prep-$mode.log" http_addr)"
		ready "${turl[$mode]}/ready"
	done
	results="$work/tracing.txt"
	: >"$results"
	echo "# cpu: $(nproc) cores; image: $IMAGE; resnet50; $N requests per concurrency, $ROUNDS rounds, tracing off vs on (always_on, OTLP/HTTP to Jaeger)"
	for round in $(seq 1 "$ROUNDS"); do
		for mode in off on; do
			"$work/prepbench" load -url "${turl[$mode]}" -image "$IMAGE" -c "$LEVELS" -n "$N" -max-time "$MAX_TIME" |
				while read -r line; do echo "$line tracing=$mode round=$round load=$(load)"; done | tee -a "$results"
		done
	done
	spans="$(curl -fs "http://127.0.0.1:$qport/api/traces?service=pred&limit=1" | grep -c '"spanID"' || true)"
	echo "# jaeger holds traces of pred: $([[ $spans -gt 0 ]] && echo yes || echo NO)"
	# CPU seconds each process used, start-up included: what tracing costs
	# the services themselves, and what the trace backend took from the
	# same cores.
	tck="$(getconf CLK_TCK)"
	for p in pred-off prep-off pred-on prep-on jaeger; do
		printf '# cpu_seconds %s=%s\n' "$p" "$(awk -v t="$tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/${cpu_pid[$p]}/stat")"
	done
	echo
	awk '
		function field(name,   i, kv) {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
			return ""
		}
		/^load / {
			c = field("c"); r = field("round"); m = field("tracing")
			ips[c, r, m] = field("images_per_s"); p50[c, r, m] = field("p50_ms"); la[c, r, m] = field("load")
			if (!(c in seen)) { seen[c] = 1; cs[++nc] = c }
			if (r > nr) nr = r
		}
		END {
			print "| clients | round | images/s off | images/s on | ratio on/off | p50 ms off | p50 ms on | p50 ratio | load |"
			print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
			for (k = 1; k <= nc; k++) {
				c = cs[k]; so = 0; sn = 0; po = 0; pn = 0
				for (r = 1; r <= nr; r++) {
					printf "| %s | %d | %.1f | %.1f | %.3f | %.2f | %.2f | %.3f | %s / %s |\n", c, r, ips[c, r, "off"], ips[c, r, "on"], ips[c, r, "on"] / ips[c, r, "off"], p50[c, r, "off"], p50[c, r, "on"], p50[c, r, "on"] / p50[c, r, "off"], la[c, r, "off"], la[c, r, "on"]
					so += ips[c, r, "off"]; sn += ips[c, r, "on"]; po += p50[c, r, "off"]; pn += p50[c, r, "on"]
				}
				printf "| %s | all | %.1f | %.1f | **%.3f** | %.2f | %.2f | **%.3f** | |\n", c, so / nr, sn / nr, sn / so, po / nr, pn / nr, pn / po
			}
		}' "$results"
	exit 0
fi

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
