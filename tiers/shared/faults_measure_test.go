package shared

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestMeasureFaults reports how long the tier's calls take while Redis is
// frozen (SIGSTOP) and after it is killed. A measurement: it runs only with
// CACHEPROXY_MEASURE_FAULTS set.
//
//	CACHEPROXY_MEASURE_FAULTS=1 go test -run TestMeasureFaults -v ./tiers/shared
func TestMeasureFaults(t *testing.T) {
	if os.Getenv("CACHEPROXY_MEASURE_FAULTS") == "" {
		t.Skip("set CACHEPROXY_MEASURE_FAULTS to run")
	}
	for _, fault := range []string{"pause", "kill"} {
		t.Run(fault, func(t *testing.T) {
			srv := redistest.Start(t)
			tier, _ := newTier(t, Options{URL: srv.URL(), Bans: new(tiers.Bans)})
			tier.peers.Store(2)
			ctx := context.Background()
			tier.Set(ctx, "k", entry("x"), time.Hour)
			var mu sync.Mutex
			lat := map[string][]time.Duration{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						for _, op := range []string{"get", "set", "lease"} {
							start := time.Now()
							switch op {
							case "get":
								tier.Get(ctx, "k")
							case "set":
								tier.Set(ctx, "k", entry("x"), time.Hour)
							case "lease":
								_, held, release, _ := tier.Lease(ctx, "l", time.Second)
								if held {
									release()
								}
							}
							d := time.Since(start)
							mu.Lock()
							lat[op] = append(lat[op], d)
							mu.Unlock()
						}
						time.Sleep(5 * time.Millisecond)
					}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			mu.Lock()
			lat = map[string][]time.Duration{}
			mu.Unlock()
			switch fault {
			case "pause":
				for range 3 {
					srv.Pause()
					time.Sleep(300 * time.Millisecond)
					srv.Resume()
					time.Sleep(700 * time.Millisecond)
				}
			case "kill":
				srv.Kill()
				time.Sleep(3 * time.Second)
			}
			close(stop)
			wg.Wait()
			for _, op := range []string{"get", "set", "lease"} {
				ds := lat[op]
				slices.Sort(ds)
				if len(ds) == 0 {
					continue
				}
				q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))].Round(time.Millisecond) }
				t.Logf("%s %s: n=%d p50=%v p99=%v max=%v", fault, op, len(ds), q(0.5), q(0.99), ds[len(ds)-1].Round(time.Millisecond))
			}
		})
	}
}
