package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The bytes of bans each client may add to the ban log. Every successful
// unsafe request may invalidate up to three URLs (RFC 9111 §4.4), and a
// URL that is cached needs a ban, which every instance and Redis keep
// for the ban retention (about a day): without a bound per client, one
// client alternating a GET and a POST over distinct cached URLs could
// fill the ban table's bound and collapse it into a purge of everything.
// Admin purges (authenticated) are not counted.

// maxBudgetClients bounds the clients whose budgets are remembered.
const maxBudgetClients = 4096

// banBudgets is a token bucket of ban bytes per client, in a bounded map.
// Each client's bucket holds burst bytes and refills at burst per ban
// retention, so over any retention one client adds at most twice burst
// to the ban log. A bucket that is full again is forgotten (a new one is
// the same); when the map is full of clients still spending, further
// clients share one overflow bucket, so no client gets more than its
// bound by being new. Safe for concurrent use.
type banBudgets struct {
	limit rate.Limit
	burst int

	mu       sync.Mutex
	clients  map[string]*rate.Limiter
	overflow *rate.Limiter
}

// newBanBudgets returns budgets of burst bytes per client, refilled at
// burst per every.
func newBanBudgets(burst int, every time.Duration) *banBudgets {
	lim := rate.Limit(float64(burst) / every.Seconds())
	return &banBudgets{limit: lim, burst: burst, clients: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(lim, burst)}
}

// take spends n bytes of client's budget at now, and reports whether it
// had them.
func (b *banBudgets) take(client string, n int, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.clients[client]
	if l == nil {
		if len(b.clients) >= maxBudgetClients {
			b.forgetFull(now)
		}
		if len(b.clients) >= maxBudgetClients {
			l = b.overflow
		} else {
			l = rate.NewLimiter(b.limit, b.burst)
			b.clients[client] = l
		}
	}
	return l.AllowN(now, n)
}

// forgetFull drops the buckets that have refilled: a new one is the same.
func (b *banBudgets) forgetFull(now time.Time) {
	for c, l := range b.clients {
		if l.TokensAt(now) >= float64(b.burst) {
			delete(b.clients, c)
		}
	}
}

// clientOf returns the client a request's budget is kept for: its peer
// address (RemoteAddr), an IPv6 address by its /64, since one host
// commonly has a whole /64. Behind a load balancer the peer is the
// balancer, and every client behind it shares one budget.
func clientOf(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
