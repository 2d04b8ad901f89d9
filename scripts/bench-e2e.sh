#!/usr/bin/env bash
# Measures the whole request path, client -> prep (HTTP) -> pred (gRPC) ->
# ONNX Runtime and back, on loopback, for the generated ResNet-50 and the
# colors model at 1, 4 and 16 concurrent clients, and beside it the
# in-process limit of the same work without any network:
#   limit = 1 / (prep's preprocessing time + pred's in-process inference time)
# where preprocessing is imageprep on the same image with the spec pred
# announces (prepbench preprocess, one core) and inference is pred's
# registry + batcher + ONNX Runtime on one image (BenchmarkInProcessResNet50,
# BenchmarkInProcessColors). The path and the limit are measured in
# alternating rounds (ROUNDS, default 3), each round's ratio against its own
# limit, because a shared machine's speed drifts by more than the gaps being
# measured. Prints a Markdown table with the medians over the rounds of
# images/s, p50/p99 latency and the ratio to the limit, the ratio's range,
# and the load average of each round.
#
#   scripts/bench-e2e.sh                      200 requests per concurrency, 3 rounds
#   ROUNDS=5 LEVELS=1 scripts/bench-e2e.sh
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
ROUNDS="${ROUNDS:-3}"
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

# The in-process inference benchmark, built once and run in every round.
go test -c -o "$work/predservice.test" ./pred/internal/predservice/

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

# Each round measures the path and, right after it, the limit's two parts,
# so that a ratio compares measurements taken within a minute of each other
# on a machine whose speed drifts. The servers stay up, idle, while the
# in-process benchmark runs.
results="$work/results.txt"
: >"$results"
echo "# cpu: $(nproc) cores; image: $IMAGE; $N requests per concurrency and round, $ROUNDS rounds" | tee -a "$results"
for round in $(seq 1 "$ROUNDS"); do
	for m in "${models[@]}"; do
		"$work/prepbench" load -url "${url[$m]}" -image "$IMAGE" -c "$LEVELS" -n "$N" -max-time "$MAX_TIME" |
			while read -r line; do echo "$line round=$round load=$(load)"; done | tee -a "$results"
		line="$("$work/prepbench" preprocess -pred "$grpc" -model "$m" -image "$IMAGE" -n "$N")"
		echo "$line round=$round load=$(load)" | tee -a "$results"
	done
	(cd pred/internal/predservice && ONNXRUNTIME_LIB="$ort" "$work/predservice.test" -test.run '^$' \
		-test.bench '^BenchmarkInProcess(ResNet50|Colors)$' -test.benchtime "${N}x") | grep '^BenchmarkInProcess' |
		while read -r line; do echo "$line round=$round load=$(load)"; done | tee -a "$results"
done

echo
awk '
	function field(name,   i, kv) {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
		return ""
	}
	# median of a[1..n], and a sorted in place.
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	/^load / {
		m = field("model"); c = field("c"); r = field("round")
		ips[m, c, r] = field("images_per_s"); p50[m, c, r] = field("p50_ms"); p99[m, c, r] = field("p99_ms")
		errs[m, c] += field("errors"); la[m, c, r] = field("load")
		if (!((m, c) in seenc)) { seenc[m, c] = 1; cs[m, ++nc[m]] = c }
		if (!(m in seen)) { seen[m] = 1; order[++nm] = m }
		if (r > nr) nr = r
	}
	/^preprocess / { pre[field("model"), field("round")] = field("mean_ms") }
	/^BenchmarkInProcess/ {
		m = ($1 ~ /ResNet50/) ? "resnet50" : "colors"
		for (i = 2; i < NF; i++) if ($(i+1) == "ns/op") inf[m, field("round")] = $i / 1e6
	}
	END {
		print "| model | clients | images/s | p50 ms | p99 ms | errors | limit images/s | ratio (median) | ratio min–max | load |"
		print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for (k = 1; k <= nm; k++) {
			m = order[k]
			for (j = 1; j <= nc[m]; j++) {
				c = cs[m, j]; loads = ""
				for (r = 1; r <= nr; r++) {
					lim = 1000 / (pre[m, r] + inf[m, r])
					ra[r] = ips[m, c, r] / lim; li[r] = lim
					a[r] = ips[m, c, r]; b[r] = p50[m, c, r]; d[r] = p99[m, c, r]
					loads = loads (r > 1 ? " " : "") la[m, c, r]
				}
				mr = median(ra, nr)
				printf "| %s | %s | %.1f | %.2f | %.2f | %d | %.1f | **%.2f** | %.2f–%.2f | %s |\n", m, c, median(a, nr), median(b, nr), median(d, nr), errs[m, c], median(li, nr), mr, ra[1], ra[nr], loads
			}
		}
		print ""
		print "| model | preprocess ms (median of the rounds means, one core) | inference ms (median, in-process) | limit images/s |"
		print "| --- | --- | --- | --- |"
		for (k = 1; k <= nm; k++) {
			m = order[k]
			for (r = 1; r <= nr; r++) { a[r] = pre[m, r]; b[r] = inf[m, r]; li[r] = 1000 / (pre[m, r] + inf[m, r]) }
			printf "| %s | %.3f | %.3f | %.1f |\n", m, median(a, nr), median(b, nr), median(li, nr)
		}
	}' "$results"
