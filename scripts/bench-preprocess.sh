#!/bin/sh
# Compares prep's image preprocessing with the classic Pillow + numpy
# pipeline on the same images and spec (resnet50: 224x224 squash, bicubic),
# one core each, and with the minimal Pillow pipeline (no exif_transpose).
# Prints both sets of results and Go's time as a fraction of each Pillow
# pipeline's, by minimum wall time and by minimum thread CPU time (the
# steadier number on a busy machine).
#
#   scripts/bench-preprocess.sh [go test flags, e.g. -count 5 -tags purego]
#
# Needs Debian's python3-pil and python3-numpy for /usr/bin/python3.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -run '^$' -bench '^BenchmarkProcess$' -cpu 1 -count 5 "$@" ./prep/internal/imageprep/ | tee "$tmp/go.txt"
/usr/bin/python3 scripts/bench-pillow.py -n 100 | tee "$tmp/pillow.txt"

echo
awk '
	# go: BenchmarkProcess/NAME  N  NS ns/op  MB/s  CPU cpu-ns/op  B/op  allocs
	FNR == NR && /^BenchmarkProcess\// {
		split($1, a, "/"); name = a[2]
		for (i = 2; i < NF; i++) {
			if ($(i+1) == "ns/op" && (!(name in gw) || $i < gw[name])) gw[name] = $i
			if ($(i+1) == "cpu-ns/op" && (!(name in gc) || $i < gc[name])) gc[name] = $i
			if ($(i+1) == "allocs/op") ga[name] = $i
		}
		next
	}
	FNR != NR && /^BenchmarkPillow(Minimal)?\// {
		split($1, a, "/"); name = a[2]; kind = (a[1] ~ /Minimal$/) ? "min" : "classic"
		pw[kind, name] = $3; pc[kind, name] = $7
		if (kind == "classic") order[++n] = name
	}
	END {
		printf "%-20s %10s %12s %7s %12s %7s %10s %12s %7s %12s %7s %6s\n", "image", "go wall ms", "pillow ms", "ratio", "minimal ms", "ratio", "go cpu ms", "pillow cpu", "ratio", "minimal cpu", "ratio", "allocs"
		for (i = 1; i <= n; i++) {
			k = order[i]
			printf "%-20s %10.3f %12.3f %7.2f %12.3f %7.2f %10.3f %12.3f %7.2f %12.3f %7.2f %6s\n", k, gw[k]/1e6, pw["classic", k]/1e6, gw[k]/pw["classic", k], pw["min", k]/1e6, gw[k]/pw["min", k], gc[k]/1e6, pc["classic", k]/1e6, gc[k]/pc["classic", k], pc["min", k]/1e6, gc[k]/pc["min", k], ga[k]
		}
	}' "$tmp/go.txt" "$tmp/pillow.txt"
