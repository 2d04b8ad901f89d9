//go:build linux && cgo

package main

import "testing"

func TestConfigureMalloc(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, v := range []string{"GLIBC_TUNABLES", "MALLOC_ARENA_MAX"} {
		if configureMalloc(env(map[string]string{v: "glibc.malloc.arena_max=4"})) {
			t.Errorf("with %s set, configureMalloc changed the allocator's settings", v)
		}
	}
	// The test binary runs on glibc (Debian), as pred's image does.
	if !configureMalloc(env(nil)) {
		t.Error("configureMalloc did not set glibc's malloc")
	}
}
