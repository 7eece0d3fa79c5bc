package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestJudgeInvariants enumerates what the judge is given — purges, the
// entry's freshness, validator and coding, the request's directives,
// Authorization and Accept-Encoding, and the client no-cache policy — and
// checks the rules every path that reads an entry relies on.
func TestJudgeInvariants(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const u = "/judge"
	bansOf := map[string]*tiers.Bans{"none": new(tiers.Bans), "hard": new(tiers.Bans), "soft": new(tiers.Bans)}
	bansOf["hard"].Apply(now, time.Hour, tiers.Ban{Seq: 2, Selector: tiers.Selector{Kind: tiers.BanURL, Value: u}, At: now})
	bansOf["soft"].Apply(now, time.Hour, tiers.Ban{Seq: 2, Selector: tiers.Selector{Kind: tiers.BanURL, Value: u, Soft: true}, At: now})
	entry := func(fresh, validator bool, coding string) *tiers.Entry {
		hdr := http.Header{"Content-Type": {"application/json"}}
		if validator {
			hdr.Set("ETag", `"v1"`)
		}
		if coding != "" {
			hdr.Set("Content-Encoding", coding)
		}
		e := &tiers.Entry{Kind: tiers.KindResponse, Status: 200, Header: tiers.MakeHeader(hdr),
			StoredAt: tiers.At(now.Add(-30 * time.Second)), Lifetime: time.Minute, URL: u, Seq: 1}
		e.SetBody([]byte("{}"))
		if !fresh {
			e.Lifetime = 10 * time.Second
		}
		return e
	}
	n := 0
	for banName, bans := range bansOf {
		h, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Bans: bans, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		for _, fresh := range []bool{true, false} {
			for _, validator := range []bool{true, false} {
				for _, coding := range []string{"", "gzip", "br"} {
					for _, cc := range []string{"", "no-cache", "max-age=0", "max-stale=3600", "max-age=5"} {
						for _, auth := range []bool{false, true} {
							for _, ae := range []string{"", "gzip"} {
								for _, policy := range []ClientNoCachePolicy{NoCacheHonour, NoCacheRevalidate, NoCacheIgnore} {
									e := entry(fresh, validator, coding)
									r, _ := http.NewRequest(http.MethodGet, "http://proxy"+u, nil)
									if cc != "" {
										r.Header.Set("Cache-Control", cc)
									}
									if auth {
										r.Header.Set("Authorization", "Bearer x")
									}
									if ae != "" {
										r.Header.Set("Accept-Encoding", ae)
									}
									x := &exchange{h: h, r: r, cc: noDirectives(), ae: acceptedCodings(r), policy: policy}
									if policy != NoCacheIgnore {
										x.cc = requestCacheControl(r.Header)
									}
									name := fmt.Sprintf("ban=%s fresh=%v etag=%v coding=%q cc=%q auth=%v ae=%q policy=%v",
										banName, fresh, validator, coding, cc, auth, ae, policy)
									checkJudgement(t, name, x, e, x.judge(e, now), now)
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	if n != 3*2*2*3*5*2*2*3 {
		t.Fatalf("judged %d cases", n)
	}
}

// checkJudgement checks j, the judgement of e for x's request at now,
// against the rules the callers of judge rely on.
func checkJudgement(t *testing.T, name string, x *exchange, e *tiers.Entry, j judgement, now time.Time) {
	t.Helper()
	bans := x.h.o.Bans
	_, auth := x.r.Header["Authorization"]
	switch {
	case bans.Dead(e):
		if j.use != purged || j.e != nil {
			t.Errorf("%s: a purged entry judged %v", name, j.use)
		}
		return
	case deliveryOf(e.Header, x.ae) == refused:
		if j.use != forbidden {
			t.Errorf("%s: an entry in a coding the client cannot read judged %v", name, j.use)
		}
		return
	case auth:
		// No entry here says a shared cache may answer Authorization.
		if j.use != forbidden {
			t.Errorf("%s: an entry answered a request with Authorization: %v", name, j.use)
		}
		return
	}
	if j.e == nil {
		t.Fatalf("%s: judged %v without an entry", name, j.use)
	}
	if j.use == usable && j.how != deliveryOf(e.Header, x.ae) {
		t.Errorf("%s: delivery %v, deliveryOf says %v", name, j.how, deliveryOf(e.Header, x.ae))
	}
	if bans.Stale(e) {
		// A soft purge: stale (from now if it was fresh), never
		// answering as it is, whatever the request accepts.
		if j.use != stored || j.e.Remaining(now) > 0 || e.Remaining(now) > 0 && (j.e == e || !j.e.SoftPurged) {
			t.Errorf("%s: a soft-purged entry judged %v (copy %v, remaining %v)", name, j.use, j.e != e, j.e.Remaining(now))
		}
		return
	}
	if j.e != e {
		t.Errorf("%s: the judge replaced an entry no soft purge names", name)
	}
	asks := x.cc.noCache || x.cc.maxAge == 0
	canRevalidate := e.Header.Get("ETag") != ""
	switch {
	case asks && (x.policy != NoCacheRevalidate || canRevalidate):
		// The request asked for the origin's word: never answered as is.
		if j.use != stored {
			t.Errorf("%s: the request asked for the origin, judged %v", name, j.use)
		}
	case asks && e.Remaining(now) > 0:
		// revalidate policy, no validator: the directive does not apply.
		if j.use != usable {
			t.Errorf("%s: revalidate policy, no validator, fresh: judged %v", name, j.use)
		}
	case x.cc.maxAge > 0 && e.Age(now) > time.Duration(x.cc.maxAge)*time.Second:
		if j.use != stored {
			t.Errorf("%s: older than the request's max-age, judged %v", name, j.use)
		}
	case e.Remaining(now) > 0:
		if j.use != usable {
			t.Errorf("%s: fresh, judged %v", name, j.use)
		}
	case x.cc.maxStale > 0 && -e.Remaining(now) <= time.Duration(x.cc.maxStale)*time.Second:
		if j.use != usable {
			t.Errorf("%s: stale within the request's max-stale, judged %v", name, j.use)
		}
	default:
		if j.use != stored {
			t.Errorf("%s: stale, judged %v", name, j.use)
		}
	}
}
