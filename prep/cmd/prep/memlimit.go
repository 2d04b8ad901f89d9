package main

import (
	"runtime/debug"
	"time"

	"go.uber.org/zap"
)

// Headroom of the soft memory limit above the budgets: a fixed part for
// the Go runtime, pools and connections, and a share of the budgets for
// garbage not yet collected. A larger headroom costs memory in a flood, a
// smaller one more collections when the budgets are full.
const (
	baselineHeadroom    = 16 << 20
	garbageHeadroomFrac = 16 // 1/16 of the budgets
)

// setMemoryLimit gives the Go collector a soft memory limit of the
// budgets plus their sixteenth plus baselineHeadroom, unless GOMEMLIMIT sets
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

// logReturn logs each return of memory after a burst.
func logReturn(log *zap.Logger) func(uint64, time.Duration) {
	return func(released uint64, took time.Duration) {
		log.Info("returned the memory of a burst to the operating system", zap.Uint64("released_bytes", released), zap.Duration("took", took))
	}
}
