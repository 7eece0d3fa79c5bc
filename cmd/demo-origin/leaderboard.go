package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

const (
	// rankSize is how many players GET /rank lists.
	rankSize = 100
	// maxScore is the largest score one game may record.
	maxScore = 1_000_000
	// defaultBlobSize and maxBlobSize bound GET /blob/{id}?size=N.
	defaultBlobSize = 1 << 10
	maxBlobSize     = 64 << 20
)

// player is one player of the leaderboard.
type player struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Score int64  `json:"score"` // total over all games
	Games int    `json:"games"`
}

// rankedPlayer is a player with its position in the ranking.
type rankedPlayer struct {
	Rank int `json:"rank"`
	player
}

// leaderboard is the in-memory game database. It is safe for concurrent
// use.
type leaderboard struct {
	latency time.Duration

	mu      sync.RWMutex
	players []player // players[i].ID == i+1
}

var (
	adjectives = []string{"swift", "brave", "quiet", "lucky", "fierce", "clever", "silent", "golden", "wild", "frosty", "crimson", "nimble"}
	animals    = []string{"fox", "otter", "falcon", "badger", "lynx", "raven", "wolf", "heron", "panda", "tiger", "gecko", "moose"}
)

// newLeaderboard returns a leaderboard of n players with scores from a
// fixed seed, so that every run serves the same data.
func newLeaderboard(n int, latency time.Duration) *leaderboard {
	rng := rand.New(rand.NewPCG(2024, 1))
	lb := &leaderboard{latency: latency, players: make([]player, n)}
	for i := range lb.players {
		p := player{
			ID:   i + 1,
			Name: fmt.Sprintf("%s-%s-%d", adjectives[rng.IntN(len(adjectives))], animals[rng.IntN(len(animals))], i+1),
		}
		p.Games = 1 + rng.IntN(20)
		for range p.Games {
			p.Score += int64(rng.IntN(1000))
		}
		lb.players[i] = p
	}
	return lb
}

// Handler returns the HTTP API of lb.
func (lb *leaderboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", lb.index)
	mux.HandleFunc("GET /rank", lb.rank)
	mux.HandleFunc("GET /players/{id}", lb.player)
	mux.HandleFunc("POST /games", lb.recordGame)
	mux.HandleFunc("GET /blob/{id}", blob)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The artificial latency of a database query.
		if lb.latency > 0 {
			t := time.NewTimer(lb.latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

func (lb *leaderboard) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, `demo-origin: the leaderboard API of a game
GET  /rank               top 100 players by total score
GET  /players/{id}       one player
POST /games              {"player": id, "score": n} records a game
GET  /blob/{id}?size=N   N deterministic bytes (Cache-Control: max-age=300)
`)
}

// ranking returns every player sorted by score, best first; ties go to the
// lower id. The caller holds lb.mu.
func (lb *leaderboard) ranking() []player {
	ps := slices.Clone(lb.players)
	slices.SortFunc(ps, func(a, b player) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return a.ID - b.ID
	})
	return ps
}

func (lb *leaderboard) rank(w http.ResponseWriter, r *http.Request) {
	lb.mu.RLock()
	ps := lb.ranking()
	lb.mu.RUnlock()
	top := make([]rankedPlayer, 0, min(rankSize, len(ps)))
	for i, p := range ps[:min(rankSize, len(ps))] {
		top = append(top, rankedPlayer{Rank: i + 1, player: p})
	}
	w.Header().Set("Cache-Tag", "rank")
	writeJSON(w, r, http.StatusOK, map[string]any{"players": top})
}

// lookup returns the player with the given id and its rank.
func (lb *leaderboard) lookup(id int) (rankedPlayer, bool) {
	lb.mu.RLock()
	defer lb.mu.RUnlock()
	if id < 1 || id > len(lb.players) {
		return rankedPlayer{}, false
	}
	p := lb.players[id-1]
	rank := 1
	for _, q := range lb.players {
		if q.Score > p.Score || (q.Score == p.Score && q.ID < p.ID) {
			rank++
		}
	}
	return rankedPlayer{Rank: rank, player: p}, true
}

func (lb *leaderboard) player(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	p, ok := lb.lookup(id)
	if err != nil || !ok {
		writeJSON(w, r, http.StatusNotFound, map[string]string{"error": "no such player"})
		return
	}
	w.Header().Set("Cache-Tag", "player:"+strconv.Itoa(id))
	writeJSON(w, r, http.StatusOK, p)
}

// game is the body of POST /games.
type game struct {
	Player *int   `json:"player"`
	Score  *int64 `json:"score"`
}

func (lb *leaderboard) recordGame(w http.ResponseWriter, r *http.Request) {
	var g game
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return
	}
	if g.Player == nil || g.Score == nil {
		writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": `want {"player": id, "score": n}`})
		return
	}
	if *g.Score < 0 || *g.Score > maxScore {
		writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("score must be between 0 and %d", maxScore)})
		return
	}
	lb.mu.Lock()
	if *g.Player < 1 || *g.Player > len(lb.players) {
		lb.mu.Unlock()
		writeJSON(w, r, http.StatusNotFound, map[string]string{"error": "no such player"})
		return
	}
	p := &lb.players[*g.Player-1]
	p.Score += *g.Score
	p.Games++
	lb.mu.Unlock()

	rp, _ := lb.lookup(*g.Player)
	w.Header().Set("Location", "/players/"+strconv.Itoa(*g.Player))
	writeJSON(w, r, http.StatusCreated, rp)
}

// blob serves size deterministic bytes for id: the same id and size always
// give the same body.
func blob(w http.ResponseWriter, r *http.Request) {
	size := int64(defaultBlobSize)
	if s := r.URL.Query().Get("size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > maxBlobSize {
			writeJSON(w, r, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("size must be an integer between 0 and %d", maxBlobSize)})
			return
		}
		size = n
	}
	id := r.PathValue("id")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Cache-Control", "max-age=300")
	seed := sha256.Sum256([]byte(id))
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%d"`, seed[:8], size))
	if r.Method == http.MethodHead {
		return
	}
	io.CopyN(w, rand.NewChaCha8(seed), size) // an error means the client is gone
}

// writeJSON writes v as the JSON body of a response with status code. A
// 200 carries an ETag of its body and answers a matching If-None-Match
// with 304, as Django's ConditionalGetMiddleware or Express do; like a
// plain Django view it says nothing about freshness.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusOK {
		sum := sha256.Sum256(body)
		etag := fmt.Sprintf(`"%x"`, sum[:8])
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(code)
	w.Write(body)
}
