package main

import (
	"runtime/debug"

	"go.uber.org/zap"
)

// Headroom of the soft memory limit above the budgets: a fixed part for
// the Go runtime, pools and connections, and a share of the budgets for
// garbage not yet collected. A larger headroom costs memory in a flood, a
// smaller one more collections when the budgets are full.
const (
	baselineHeadroom    = 16 << 20
	garbageHeadroomFrac = 8 // 1/8 of the budgets
)

// setMemoryLimit gives the Go collector a soft memory limit of the
// budgets plus their eighth plus baselineHeadroom, unless GOMEMLIMIT sets
// one: with GOGC
// alone the heap may grow to twice the bytes in flight before a
// collection, so a flood that fills the budget would take twice the
// budget's memory. It returns the limit set, 0 for none.
func setMemoryLimit(cfg overloadConfig, getenv func(string) string, log *zap.Logger) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	budgets := cfg.maxInflightBytes + cfg.maxDecodeBytes
	limit := budgets + budgets/garbageHeadroomFrac + baselineHeadroom
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit", zap.Int64("bytes", limit))
	return limit
}
