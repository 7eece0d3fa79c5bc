// Package jsoncorpus generates a corpus of API responses like those an
// API cache holds: Django REST framework list pages (count, next,
// previous, results), one per id, deterministic, of 1–16 KiB spread
// log-uniformly (median about 4 KiB), that gzip -6 shrinks to about a
// third. The storage benchmark (bench/harness, the storage scenario) and
// the L1 memory tests serve it.
package jsoncorpus

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// MinSize and MaxSize bound the length of a page, in bytes.
const (
	MinSize = 1 << 10
	MaxSize = 16 << 10
)

var (
	firstNames = []string{"alice", "bruno", "chloe", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jonas",
		"kemal", "lucia", "marek", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tomas", "ulla", "victor",
		"wanda", "xavier", "yusuf", "zoe"}
	lastNames = []string{"andersen", "bianchi", "costa", "dubois", "eriksen", "fischer", "garcia", "horvath",
		"ivanova", "jensen", "kowalski", "laurent", "moreau", "novak", "olsen", "petrov", "rossi", "schmidt",
		"tanaka", "urban", "vargas", "weber", "yilmaz", "zeller"}
	countries = []string{"FR", "DE", "IT", "ES", "PL", "SE", "NO", "JP", "BR", "US", "CA", "IN", "TR", "CZ", "NL"}
	words     = []string{"speedrun", "casual", "ranked", "arena", "league", "weekly", "coop", "solo", "veteran",
		"rookie", "sniper", "builder", "strategist", "explorer", "collector", "streamer", "coach", "modder"}
)

// Size returns the length Page(id) aims at: log-uniform in [MinSize,
// MaxSize], drawn from id alone.
func Size(id int) int {
	r := rand.New(rand.NewPCG(uint64(id), 0x5eed))
	return int(MinSize * math.Pow(MaxSize/MinSize, r.Float64()))
}

// Page returns the list page for id: a DRF paginated response of player
// records, whole records until it reaches Size(id) bytes (it may exceed
// it by less than one record). The same id always gives the same bytes.
func Page(id int) []byte {
	target := Size(id)
	r := rand.New(rand.NewPCG(uint64(id), 0xda7a))
	const base = "https://api.example.com/v2/players/"
	b := make([]byte, 0, target+512)
	b = append(b, `{"count":`...)
	b = strconv.AppendInt(b, int64(10_000+r.IntN(90_000)), 10)
	b = append(b, `,"next":"`+base+`?page=`...)
	b = strconv.AppendInt(b, int64(id+1), 10)
	b = append(b, `","previous":"`+base+`?page=`...)
	b = strconv.AppendInt(b, int64(max(id-1, 1)), 10)
	b = append(b, `","results":[`...)
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; len(b) < target; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		pid := int64(id*50 + i)
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, pid, 10)
		b = append(b, `,"uuid":"`...)
		b = strconv.AppendUint(b, r.Uint64(), 16)
		b = strconv.AppendUint(b, r.Uint64()>>16, 16)
		b = append(b, `","url":"`+base...)
		b = strconv.AppendInt(b, pid, 10)
		b = append(b, `/","username":"`...)
		b = append(b, first...)
		b = append(b, '_')
		b = append(b, last...)
		b = strconv.AppendInt(b, int64(r.IntN(1000)), 10)
		b = append(b, `","display_name":"`...)
		b = append(b, first...)
		b = append(b, ' ')
		b = append(b, last...)
		b = append(b, `","country":"`...)
		b = append(b, countries[r.IntN(len(countries))]...)
		b = append(b, `","score":`...)
		b = strconv.AppendInt(b, int64(r.IntN(5_000_000)), 10)
		b = append(b, `,"rank":`...)
		b = strconv.AppendInt(b, int64(r.IntN(100_000)+1), 10)
		b = append(b, `,"win_rate":0.`...)
		b = strconv.AppendInt(b, int64(1000+r.IntN(9000)), 10)
		b = append(b, `,"created":"`...)
		b = epoch.Add(time.Duration(r.Int64N(int64(700*24*time.Hour)))).AppendFormat(b, "2006-01-02T15:04:05.000000Z")
		b = append(b, `","is_active":`...)
		b = strconv.AppendBool(b, r.IntN(4) != 0)
		b = append(b, `,"tags":["`...)
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, `","`...)
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, `"],"avatar":"https://cdn.example.com/avatars/`...)
		b = strconv.AppendUint(b, r.Uint64(), 16)
		b = append(b, `.png"}`...)
	}
	return append(b, "]}"...)
}
