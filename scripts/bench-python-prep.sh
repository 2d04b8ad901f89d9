#!/usr/bin/env bash
# Compares prep with the classic Python prep service it replaces
# (scripts/python-prep/app.py: FastAPI + uvicorn with 2 workers, Pillow,
# numpy, pred's OIP gRPC), both in front of the same pred, on loopback.
# For each model it checks that both answer the same label for the image,
# then loads them in alternating turns (prep, python, prep, ... at each
# concurrency) with prepbench load and prints a Markdown table: images/s,
# p50 latency and the CPU milliseconds each prep (and pred) spent per
# request, from the utime+stime of its processes (uvicorn: the master and
# all its children) across the load, warm-up requests included; and the
# ratio prep/python of the CPU per request. The kernel counts CPU time in
# clock ticks (usually 10 ms), so keep N large enough that a turn uses
# hundreds of them.
#
#   scripts/bench-python-prep.sh                  colors and resnet50, 300 requests at 1 and 4 clients
#   N=100 MODELS=colors scripts/bench-python-prep.sh
#   ROUNDS=3 LEVELS=1,4,16 WORKERS=2 scripts/bench-python-prep.sh
#
# Every load is bounded by a request count (N) and a time (MAX_TIME per
# concurrency). Run it on an otherwise idle machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
N="${N:-300}"
MODELS="${MODELS:-colors,resnet50}"
LEVELS="${LEVELS:-1,4}"
ROUNDS="${ROUNDS:-1}"
WORKERS="${WORKERS:-2}"
IMAGE="${IMAGE:-testdata/images/photo-500x375.jpg}"
MAX_TIME="${MAX_TIME:-120s}"
# START_TIMEOUT bounds the wait for each server to be ready, in seconds.
START_TIMEOUT="${START_TIMEOUT:-120}"
python=/usr/bin/python3 # Debian's, where install-deps.sh installs the modules

scripts/install-deps.sh build
scripts/install-deps.sh bench-python
ort="$(scripts/install-onnxruntime.sh)"
scripts/gen-models.sh >/dev/null
work="$root/.cache/bench-python-prep"
mkdir -p "$work"
go build -o "$work/pred" ./pred/cmd/pred
go build -o "$work/prep" ./prep/cmd/prep
go build -o "$work/prepbench" ./prep/cmd/prepbench

fail() { echo "bench-python-prep: $*" >&2; exit 1; }

# descendants PID...: the processes and all their children, recursively.
descendants() {
	local p
	for p in "$@"; do
		echo "$p"
		# shellcheck disable=SC2046 # one PID per word
		descendants $(cat /proc/"$p"/task/*/children 2>/dev/null)
	done
}

pids=()
cleanup() {
	local all
	mapfile -t all < <(descendants "${pids[@]}")
	for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu_ms PID: the CPU milliseconds (user + system) that PID and all its
# descendants have used.
tck="$(getconf CLK_TCK)"
cpu_ms() {
	local p s f ticks=0
	for p in $(descendants "$1"); do
		s="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
		read -ra f <<<"${s##*) }" # fields from the 3rd on: utime is the 14th, stime the 15th
		ticks=$((ticks + f[11] + f[12]))
	done
	echo $((ticks * 1000 / tck))
}

# address PID LOG SED: waits for a line of LOG that the sed expression SED
# turns into an address, and prints it; fails at once if PID exits.
address() {
	local deadline=$((SECONDS + START_TIMEOUT)) a
	while ((SECONDS < deadline)); do
		a="$(sed -nE "$3" "$2")"
		a="${a%%$'\n'*}"
		if [[ -n "$a" ]]; then
			echo "$a"
			return
		fi
		kill -0 "$1" 2>/dev/null || { cat "$2" >&2; fail "process $1 exited before it listened (log: $2)"; }
		sleep 0.1
	done
	cat "$2" >&2
	fail "no listening address in $2 within ${START_TIMEOUT}s"
}
listening_json() { address "$1" "$2" 's/.*"msg":"listening".*"'"$3"'":"([^"]+)".*/\1/p'; }

# ready PID URL: waits until URL answers 200; fails at once if PID exits.
ready() {
	local deadline=$((SECONDS + START_TIMEOUT))
	until curl -fs -o /dev/null --max-time 5 "$2"; do
		kill -0 "$1" 2>/dev/null || fail "process $1 exited before $2 was ready"
		((SECONDS < deadline)) || fail "$2 not ready within ${START_TIMEOUT}s: $(curl -s --max-time 5 "$2")"
		sleep 0.2
	done
}

: >"$work/pred.log"
"$work/pred" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --model-repository models --ort-lib "$ort" \
	>"$work/pred.log" 2>&1 &
pred_pid=$!
pids+=("$pred_pid")
grpc="$(listening_json "$pred_pid" "$work/pred.log" grpc_addr)"
ready "$pred_pid" "http://$(listening_json "$pred_pid" "$work/pred.log" http_addr)/v2/health/ready"

IFS=, read -ra models <<<"$MODELS"
IFS=, read -ra levels <<<"$LEVELS"
declare -A url pid
for m in "${models[@]}"; do
	log="$work/prep-$m.log"
	: >"$log"
	"$work/prep" --http-addr 127.0.0.1:0 --pred-address "$grpc" --model "$m" >"$log" 2>&1 &
	pid[prep-$m]=$!
	pids+=($!)
	url[prep-$m]="http://$(listening_json "${pid[prep-$m]}" "$log" http_addr)"
	ready "${pid[prep-$m]}" "${url[prep-$m]}/ready"

	log="$work/python-$m.log"
	: >"$log"
	"$python" scripts/python-prep/app.py --pred "$grpc" --model "$m" --model-repository models \
		--port 0 --workers "$WORKERS" >"$log" 2>&1 &
	pid[python-$m]=$!
	pids+=($!)
	url[python-$m]="$(address "${pid[python-$m]}" "$log" 's/^listening (http:.*)/\1/p')"
	ready "${pid[python-$m]}" "${url[python-$m]}/ready"
done

body="$work/body.json"
printf '{"data": "%s"}' "$(base64 -w0 "$IMAGE")" >"$body"
declare -A label
for m in "${models[@]}"; do
	for svc in prep python; do
		label[$svc]="$(curl -fsS --max-time 30 -H 'Content-Type: application/json' --data-binary @"$body" \
			"${url[$svc-$m]}/predict/label")" || fail "$svc ($m) did not answer /predict/label for $IMAGE"
		echo "# $m $svc: $(curl -fsS --max-time 30 -H 'Content-Type: application/json' --data-binary @"$body" \
			"${url[$svc-$m]}/predict/topk?k=1")"
	done
	[[ "${label[prep]}" == "${label[python]}" ]] ||
		fail "$m: prep answers ${label[prep]} but the Python prep ${label[python]} for $IMAGE"
done

results="$work/results.txt"
: >"$results"
echo "# cpu: $(nproc) cores; image: $IMAGE; $N requests per concurrency and round, $ROUNDS rounds; uvicorn workers: $WORKERS"
for m in "${models[@]}"; do
	for c in "${levels[@]}"; do
		for round in $(seq 1 "$ROUNDS"); do
			for svc in prep python; do
				c0="$(cpu_ms "${pid[$svc-$m]}")"
				p0="$(cpu_ms "$pred_pid")"
				line="$("$work/prepbench" load -url "${url[$svc-$m]}" -image "$IMAGE" -c "$c" -n "$N" -max-time "$MAX_TIME")" ||
					fail "prepbench load of $svc ($m, $c clients) failed: $line"
				c1="$(cpu_ms "${pid[$svc-$m]}")"
				p1="$(cpu_ms "$pred_pid")"
				# prepbench sends 2 warm-up requests per client before the n measured.
				echo "$line svc=$svc round=$round warmup=$((2 * c)) cpu_ms=$((c1 - c0)) pred_cpu_ms=$((p1 - p0)) load=$(cut -d' ' -f1 /proc/loadavg)" |
					tee -a "$results"
			done
		done
	done
done

echo
awk '
	function field(name,   i, kv) {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
		return ""
	}
	/^load / {
		k = field("model") SUBSEP field("c"); s = field("svc")
		if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
		n = field("n"); req = n + field("warmup")
		# n / images_per_s: the time with more digits than "seconds" has
		count[k, s] += n; secs[k, s] += n / field("images_per_s"); p50[k, s] += field("p50_ms"); rounds[k, s]++
		cpu[k, s] += field("cpu_ms"); pcpu[k, s] += field("pred_cpu_ms"); reqs[k, s] += req
	}
	END {
		print "| model | clients | images/s prep | images/s python | p50 ms prep | p50 ms python | CPU ms/request prep | CPU ms/request python | CPU ratio prep/python | pred CPU ms/request (prep / python) |"
		print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; split(k, mc, SUBSEP)
			cp = cpu[k, "prep"] / reqs[k, "prep"]; cy = cpu[k, "python"] / reqs[k, "python"]
			printf "| %s | %s | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | **%.2f** | %.2f / %.2f |\n", mc[1], mc[2],
				count[k, "prep"] / secs[k, "prep"], count[k, "python"] / secs[k, "python"],
				p50[k, "prep"] / rounds[k, "prep"], p50[k, "python"] / rounds[k, "python"],
				cp, cy, (cy > 0 ? cp / cy : 0), pcpu[k, "prep"] / reqs[k, "prep"], pcpu[k, "python"] / reqs[k, "python"]
		}
	}' "$results"
