package inflight

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Bounds of DefaultLimit.
const (
	// defaultLimitShare: the default budget is this fraction (1/8) of the
	// memory the process may use. prep and pred often share a host or a
	// pod, and besides requests in flight each holds its baseline (Go heap,
	// ONNX Runtime sessions, decoded images); an eighth each keeps a flood
	// far from the limit where the kernel kills the process.
	defaultLimitShare = 8
	// MinDefaultLimit and MaxDefaultLimit bound the default budget: a tiny
	// container still admits a few large requests, and a big host does not
	// admit gigabytes that a flood would need seconds to even send.
	MinDefaultLimit = 64 << 20
	MaxDefaultLimit = 2 << 30
	// fallbackMemory is assumed when neither cgroup nor /proc tells.
	fallbackMemory = 4 << 30
)

// Files read by MemoryLimit.
var (
	cgroupV2Max = "/sys/fs/cgroup/memory.max"
	cgroupV1Max = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	procMeminfo = "/proc/meminfo"
)

// DefaultLimit is the default in-flight budget: an eighth of MemoryLimit,
// within [MinDefaultLimit, MaxDefaultLimit].
func DefaultLimit() int64 {
	return min(max(MemoryLimit()/defaultLimitShare, MinDefaultLimit), MaxDefaultLimit)
}

// MemoryLimit is the memory the process may use: the cgroup's limit when
// one is set (v2 memory.max or v1 memory.limit_in_bytes), else the
// machine's MemTotal, whichever is smaller; 4 GiB when neither can be read.
func MemoryLimit() int64 {
	total := memTotal(procMeminfo)
	for _, f := range []string{cgroupV2Max, cgroupV1Max} {
		if n := cgroupLimit(f); n > 0 && (total <= 0 || n < total) {
			total = n
		}
	}
	if total <= 0 {
		return fallbackMemory
	}
	return total
}

// cgroupLimit reads a cgroup memory limit file: a byte count, or "max"
// (and, in v1, a huge number) for none; 0 when there is no limit.
func cgroupLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}

// memTotal reads MemTotal from a /proc/meminfo file, in bytes; 0 if absent.
func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
