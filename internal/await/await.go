// Package await is the tests' one way to wait for a condition that
// becomes true on another goroutine or process: polled, within a
// generous bound, failing the test with what it waited for.
package await

import (
	"testing"
	"time"
)

// Until polls cond every few milliseconds until it is true, and fails t
// if it is still false after limit.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	poll := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(poll)
		poll = min(2*poll, 20*time.Millisecond)
	}
}
