#!/bin/sh
# Compares prep's image preprocessing with the classic Pillow + numpy
# pipeline on the same images and spec (resnet50: 224x224 squash, bicubic),
# one core each. Prints both sets of results and Go's time as a fraction of
# Pillow's, by minimum wall time and by minimum thread CPU time (the steadier
# number on a busy machine).
#
#   scripts/bench-preprocess.sh [go test flags, e.g. -count 5 -tags purego]
#
# Needs Debian's python3-pil and python3-numpy for /usr/bin/python3.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -run '^$' -bench 'BenchmarkProcess' -cpu 1 -count 5 "$@" ./prep/internal/imageprep/ | tee "$tmp/go.txt"
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
	FNR != NR && /^BenchmarkPillow\// {
		split($1, a, "/"); name = a[2]
		pw[name] = $3; pc[name] = $7
		order[++n] = name
	}
	END {
		printf "%-22s %12s %12s %7s %12s %12s %7s %7s\n", "image", "go wall ms", "pil wall ms", "ratio", "go cpu ms", "pil cpu ms", "ratio", "allocs"
		for (i = 1; i <= n; i++) {
			k = order[i]
			printf "%-22s %12.3f %12.3f %7.2f %12.3f %12.3f %7.2f %7s\n", k, gw[k]/1e6, pw[k]/1e6, gw[k]/pw[k], gc[k]/1e6, pc[k]/1e6, gc[k]/pc[k], ga[k]
		}
	}' "$tmp/go.txt" "$tmp/pillow.txt"
