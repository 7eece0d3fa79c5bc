package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// A fill every caller has left is cancelled, and a caller that comes
// while the cancelled fill is still winding down starts a fill of its own
// instead of waiting for one that can only fail.
func TestFlightAbandonedFillNotJoined(t *testing.T) {
	var g flightGroup
	sawCancel := make(chan struct{})
	finish := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := g.do(ctx, "k", time.Minute, func(fctx context.Context) *fillResult {
			<-fctx.Done()
			close(sawCancel)
			<-finish // slow to return after the cancel
			return &fillResult{err: fctx.Err()}
		})
		first <- err
	}()
	await.Until(t, 10*time.Second, "the caller to wait on the flight", func() bool { return g.waiting("k") == 1 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("leaving caller got %v, want context.Canceled", err)
	}
	select {
	case <-sawCancel:
	case <-time.After(10 * time.Second):
		t.Fatal("fill not cancelled after its only caller left")
	}
	defer close(finish)

	second := make(chan *fillResult, 1)
	go func() {
		res, leader, err := g.do(context.Background(), "k", time.Minute, func(context.Context) *fillResult {
			return &fillResult{key: "new"}
		})
		if err != nil || !leader {
			t.Errorf("second caller: leader %v, err %v; want a fill of its own", leader, err)
		}
		second <- res
	}()
	select {
	case res := <-second:
		if res == nil || res.key != "new" {
			t.Fatalf("second caller got %+v, want its own fill's result", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second caller waits for the abandoned fill")
	}
}
