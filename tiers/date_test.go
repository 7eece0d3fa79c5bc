package tiers

import (
	"net/http"
	"testing"
	"time"
)

// parseDate takes exactly the values that time's own parser takes and
// formats back to the same bytes, within dateBytes' range, with the
// same seconds.
func FuzzParseDate(f *testing.F) {
	for _, v := range []string{
		"Mon, 07 Dec 2026 12:51:10 GMT", "Tue, 07 Dec 2026 12:51:10 GMT", "Mon, 07 Dec 2026 12:51:10 gmt",
		"Thu, 01 Jan 1970 00:00:00 GMT", "Wed, 31 Dec 1969 23:59:59 GMT", "Fri, 31 Jun 2026 00:00:00 GMT",
		"Sat, 29 Feb 2028 23:59:60 GMT", "Mon, 7 Dec 2026 12:51:10 GMT ", "Mon, 07 dec 2026 12:51:10 GMT",
		"Mon, 07 Dec 2026 1a:51:10 GMT", "Mon, 07 Dec 20260 12:51:1 GMT", "Sat, 31 Dec 36812 00:00:00 GMT",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		secs, ok := parseDate(v)
		want := false
		tm, err := time.Parse(http.TimeFormat, v)
		if err == nil && tm.UTC().Format(http.TimeFormat) == v && tm.Unix() >= 0 && tm.Unix() < 1<<(8*dateBytes) {
			want = true
		}
		if ok != want || ok && secs != tm.Unix() {
			t.Fatalf("parseDate(%q) = %d, %v; time.Parse gives %v, %v", v, secs, ok, tm, err)
		}
		if ok && dateValues(secs)[0] != v {
			t.Fatalf("%q read back as %q", v, dateValues(secs)[0])
		}
	})
}
