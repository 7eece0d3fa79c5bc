package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// The collector gets a memory limit of the L1 budget plus headroom that
// grows with a large L1, also with no L1, and with no L1 a GC percent
// that spares its small live heap constant collections; GOMEMLIMIT and
// GOGC from the environment win.
func TestTuneGC(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	// The headroom is 48 MiB, or three quarters of a larger L1 (whose
	// collections mark more entries: see memoryLimit); an L1 whose sum
	// would wrap gets none (math.MaxInt64).
	for l1, limit := range map[int64]int64{0: 48 << 20, 64 << 20: 112 << 20, 256 << 20: 448 << 20, 4 << 30: 7 << 30,
		math.MaxInt64 / 7 * 4: math.MaxInt64 / 7 * 7, 6 << 60: math.MaxInt64, math.MaxInt64: math.MaxInt64} {
		if got := memoryLimit(l1); got != limit {
			t.Errorf("L1 %d: memoryLimit %d, want %d", l1, got, limit)
		}
		tuneGC(config{L1MaxBytes: l1}, quiet)
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Errorf("L1 %d: memory limit %d, want %d", l1, got, limit)
		}
		want := 100
		if l1 == 0 {
			want = gcPercentNoL1
		}
		if got := debug.SetGCPercent(100); got != want {
			t.Errorf("L1 %d: GC percent %d, want %d", l1, got, want)
		}
	}

	debug.SetMemoryLimit(1 << 40)
	t.Setenv("GOMEMLIMIT", "1TiB")
	t.Setenv("GOGC", "50")
	tuneGC(config{L1MaxBytes: 0}, quiet)
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("GOMEMLIMIT set: memory limit changed to %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent changed to %d", got)
	}
}
