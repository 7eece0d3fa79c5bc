package tiers

import (
	"net/http"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/formatted"
)

// Dates: a header value in HTTP's preferred date form (IMF-fixdate, RFC
// 9110 §5.6.7), as every response's Date is and most Last-Modified and
// Expires are, is held in a Header as its Unix seconds (see Header), and
// formatted again when read, once a second of the process's dates.

// looksLikeDate reports whether v has the shape of an IMF-fixdate, "Mon,
// 07 Dec 2026 12:51:10 GMT": the cheap test before parseDate.
func looksLikeDate(v string) bool {
	return len(v) == len(http.TimeFormat) && v[3] == ',' && v[25:] == " GMT"
}

// parseDate returns the Unix seconds of v if v is exactly the IMF-fixdate
// of a second between 1970 and the year 36812 (what dateBytes holds).
// It reads the fields at their fixed places, then checks v against the
// date's value as a Header will give it (dateValues, formatted by time's
// own format): a wrong day name, a day 31 of a 30-day month, a lower-case
// zone... are not that value, so a Header gives back byte for byte the
// value it was made of. Reading a date this way costs about what
// comparing it costs while its second is in dateCache, as the Date of an
// entry just filled or read from Redis is.
func parseDate(v string) (int64, bool) {
	if !looksLikeDate(v) {
		return 0, false
	}
	m := strings.Index(months, v[8:11])
	if m < 0 || m%3 != 0 {
		return 0, false
	}
	secs := time.Date(digits(v[12:16]), time.Month(m/3+1), digits(v[5:7]),
		digits(v[17:19]), digits(v[20:22]), digits(v[23:25]), 0, time.UTC).Unix()
	if secs < 0 || secs >= 1<<(8*dateBytes) {
		return 0, false
	}
	return secs, dateValues(secs)[0] == v
}

// months are the month names of IMF-fixdate, three bytes each.
const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// digits returns the number s spells in decimal; a byte that is not a
// digit gives some other small number, which parseDate's check refuses.
func digits(s string) int {
	n := 0
	for i := range len(s) {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// dateValues returns the value of the date secs, from dateCache.
func dateValues(secs int64) []string { return dateCache.Values(secs) }

// dateCache holds formatted dates by second, direct-mapped: its 4,096
// slots cover 68 minutes of distinct seconds, so the Date of every entry
// filled within the last hour (L1 holds an entry 30 s by default:
// -l1-ttl) has its own slot, and a hit reads it without allocating. An
// older date shares its slot with a newer one and may be formatted again
// (about 100 ns and two allocations). Bounded, whatever the entries.
var dateCache = formatted.New(func(secs int64) string {
	return time.Unix(secs, 0).UTC().Format(http.TimeFormat)
})
