package tiers

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func responseEntry() *Entry {
	return &Entry{
		Kind:   KindResponse,
		Status: http.StatusOK,
		Header: MakeHeader(http.Header{
			"Content-Type":  {"application/json"},
			"Cache-Control": {"public, max-age=60"},
			"Etag":          {`"v1"`},
			"Vary":          {"Accept-Encoding", "Accept-Language"},
			"X-Empty":       {""},
		}),
		body:       `{"player":"ada","score":42}`,
		StoredAt:   At(t0),
		InitialAge: 3 * time.Second,
		Lifetime:   time.Minute,
		x: &Extra{
			Vary:                 []string{"Accept-Encoding", "Accept-Language"},
			StaleIfError:         time.Hour,
			StaleWhileRevalidate: 30 * time.Second,
			Tags:                 []string{"player:ada", "season:3"},
		},
		URL: "/players/ada?season=3",
		Seq: 1<<40 + 7,
	}
}

// equalEntries reports how a and b differ, or "" if they are equal as
// far as the encoding goes (nil and empty slices are equal).
func equalEntries(a, b *Entry) string {
	switch {
	case a.Kind != b.Kind:
		return fmt.Sprintf("Kind %d != %d", a.Kind, b.Kind)
	case a.Status != b.Status:
		return fmt.Sprintf("Status %d != %d", a.Status, b.Status)
	case a.StoredAt != b.StoredAt:
		return fmt.Sprintf("StoredAt %v != %v", a.StoredAt, b.StoredAt)
	case a.InitialAge != b.InitialAge:
		return fmt.Sprintf("InitialAge %v != %v", a.InitialAge, b.InitialAge)
	case a.Lifetime != b.Lifetime:
		return fmt.Sprintf("Lifetime %v != %v", a.Lifetime, b.Lifetime)
	case a.Extra().StaleIfError != b.Extra().StaleIfError || a.Extra().StaleWhileRevalidate != b.Extra().StaleWhileRevalidate:
		return fmt.Sprintf("stale windows %+v != %+v", a.Extra(), b.Extra())
	case a.Seq != b.Seq:
		return fmt.Sprintf("Seq %d != %d", a.Seq, b.Seq)
	case a.URL != b.URL:
		return fmt.Sprintf("URL %q != %q", a.URL, b.URL)
	case !slices.Equal(a.Vary(), b.Vary()):
		return fmt.Sprintf("Vary %q != %q", a.Vary(), b.Vary())
	case !slices.Equal(a.Tags(), b.Tags()):
		return fmt.Sprintf("Tags %q != %q", a.Tags(), b.Tags())
	case !bytes.Equal(a.AppendBody(nil), b.AppendBody(nil)):
		return fmt.Sprintf("body %q != %q", a.AppendBody(nil), b.AppendBody(nil))
	case !slices.Equal(a.Header.s, b.Header.s):
		return fmt.Sprintf("Header %q != %q", a.Header.s, b.Header.s)
	}
	return ""
}

func TestRoundTrip(t *testing.T) {
	full := responseEntry()

	empty := responseEntry()
	empty.Status = http.StatusNoContent
	empty.SetBody(nil)
	empty.Header = Header{}
	empty.SetExtra(Extra{StaleIfError: time.Hour})

	zeroLength := responseEntry()
	zeroLength.SetBody([]byte{})

	marker := &Entry{
		Kind:     KindVary,
		StoredAt: At(t0),
		Lifetime: time.Hour,
		x:        &Extra{Vary: []string{"Accept-Encoding"}},
		URL:      "/players/ada",
	}

	negative := responseEntry()
	negative.StoredAt = At(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))
	negative.InitialAge = -time.Second // never produced, but representable
	negative.Lifetime = -time.Minute

	binary := responseEntry()
	binary.SetBody([]byte{0, 0xCA, 1, 0xff, '\r', '\n'})
	binary.Header = MakeHeader(http.Header{"X-Unicode": {"héllo wörld", "日本"}})

	large := responseEntry()
	large.SetBody(bytes.Repeat([]byte("0123456789abcdef"), 1<<14)) // 256 KiB

	for _, tt := range []struct {
		name string
		e    *Entry
	}{
		{"response", full},
		{"empty body and no headers", empty},
		{"zero-length body", zeroLength},
		{"vary marker", marker},
		{"negative durations and pre-1970 time", negative},
		{"binary body and unicode headers", binary},
		{"large body", large},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := Encode(tt.e)
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode(Encode(e)): %v", err)
			}
			if diff := equalEntries(tt.e, got); diff != "" {
				t.Errorf("round trip differs: %s", diff)
			}
			if size := tt.e.Size(); size < len(data) {
				t.Errorf("Size() = %d, less than the %d encoded bytes", size, len(data))
			}
			if again := Encode(got); !bytes.Equal(again, data) {
				t.Error("re-encoding the decoded entry gives different bytes")
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a := responseEntry()
	b := responseEntry()
	// Build b's header from maps filled in other insertion orders.
	src := a.Header.Clone()
	keys := slices.Sorted(maps.Keys(src))
	for range 10 {
		h := http.Header{}
		for _, k := range slices.Backward(keys) {
			h[k] = src[k]
		}
		b.Header = MakeHeader(h)
		if !bytes.Equal(Encode(a), Encode(b)) {
			t.Fatal("equal entries encode to different bytes")
		}
	}
}

func TestAppendEncode(t *testing.T) {
	e := responseEntry()
	prefix := []byte("prefix")
	got := AppendEncode(slices.Clone(prefix), e)
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], Encode(e)) {
		t.Error("AppendEncode does not append Encode's bytes")
	}
}

// TestDecodeVersion1 reads an entry as an instance before the stale
// windows wrote it: the same entry, with none.
func TestDecodeVersion1(t *testing.T) {
	e := responseEntry()
	data := Encode(e)
	// Version 1 is version 2 without the two varints after lifetime.
	v1 := slices.Clone(data[:2])
	v1[1] = 1
	rest := data[2:]
	d := decoder{b: string(rest)}
	d.byte()
	d.uvarint()
	d.varint()
	d.varint()
	d.varint()
	head := len(rest) - len(d.b)
	d.varint()
	d.varint()
	v1 = append(append(v1, rest[:head]...), rest[len(rest)-len(d.b):]...)
	got, err := Decode(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := *e
	want.SetExtra(Extra{Vary: want.Vary(), Tags: want.Tags()})
	if diff := equalEntries(got, &want); diff != "" {
		t.Error(diff)
	}
}

func TestDecodeUnknownVersion(t *testing.T) {
	data := Encode(responseEntry())
	for _, v := range []byte{0, 3, 0xff} {
		bad := slices.Clone(data)
		bad[1] = v
		e, err := Decode(bad)
		if !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("version %d: err = %v, want ErrUnknownVersion", v, err)
		}
		if e != nil {
			t.Errorf("version %d: got an entry with the error", v)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Errorf("version %d: err also matches ErrCorrupt", v)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	valid := Encode(responseEntry())
	badKind := slices.Clone(valid)
	badKind[2] = 9
	hugeLength := slices.Clone(valid[:len(valid)-responseEntry().BodyLen()-1])
	hugeLength = append(hugeLength, 0xff, 0xff, 0xff, 0xff, 0x0f) // body length ~4 GiB

	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"magic only", []byte{0xCA}},
		{"bad magic", append([]byte{0xCB}, valid[1:]...)},
		{"text", []byte("HTTP/1.1 200 OK\r\n")},
		{"header only", valid[:3]},
		{"bad kind", badKind},
		{"trailing bytes", append(slices.Clone(valid), 0)},
		{"length beyond input", hugeLength},
		{"overlong varint", append(slices.Clone(valid[:3]), bytes.Repeat([]byte{0x80}, 11)...)},
	}
	// Every proper prefix of a valid encoding is truncated.
	for n := 3; n < len(valid); n++ {
		cases = append(cases, struct {
			name string
			data []byte
		}{fmt.Sprintf("truncated to %d", n), valid[:n]})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want one wrapping ErrCorrupt", err)
			}
			if e != nil {
				t.Error("got an entry with the error")
			}
		})
	}
}

func TestDecodeAliasesInput(t *testing.T) {
	// Documented (DecodeString): the body aliases data, in one piece (a string: nothing
	// can append to it).
	data := string(Encode(responseEntry()))
	e, err := DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	at := unsafe.StringData(e.body)
	if e.tail != "" || at != unsafe.StringData(data[len(data)-e.BodyLen():]) {
		t.Errorf("the decoded body is not the end of data in one piece")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(responseEntry()))
	f.Add(Encode(&Entry{Kind: KindVary, StoredAt: At(t0), x: &Extra{Vary: []string{"Accept"}}}))
	f.Add(Encode(&Entry{Kind: KindResponse, StoredAt: At(t0)}))
	valid := Encode(responseEntry())
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{0xCA, 1})
	f.Add([]byte{0xCA, 2, 1})
	f.Add([]byte{0xCA, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			if e != nil {
				t.Fatal("entry returned with an error")
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("err = %v, want ErrCorrupt or ErrUnknownVersion", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes to the same
		// entry, within the size Size promises.
		enc := Encode(e)
		if e.Size() < len(enc) {
			t.Fatalf("Size() = %d < %d encoded bytes", e.Size(), len(enc))
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if diff := equalEntries(e, again); diff != "" {
			t.Fatalf("re-encoded entry differs: %s", diff)
		}
	})
}

func TestEntryFreshness(t *testing.T) {
	now := t0
	for _, tt := range []struct {
		name      string
		e         Entry
		age       time.Duration
		remaining time.Duration
		fresh     bool
	}{
		{
			name:      "new",
			e:         Entry{StoredAt: At(now), Lifetime: time.Minute},
			age:       0,
			remaining: time.Minute,
			fresh:     true,
		},
		{
			name:      "resident plus initial age",
			e:         Entry{StoredAt: At(now.Add(-10 * time.Second)), InitialAge: 5 * time.Second, Lifetime: time.Minute},
			age:       15 * time.Second,
			remaining: 45 * time.Second,
			fresh:     true,
		},
		{
			name:      "exactly expired",
			e:         Entry{StoredAt: At(now.Add(-time.Minute)), Lifetime: time.Minute},
			age:       time.Minute,
			remaining: 0,
			fresh:     false,
		},
		{
			name:      "stale",
			e:         Entry{StoredAt: At(now.Add(-2 * time.Minute)), InitialAge: time.Second, Lifetime: time.Minute},
			age:       2*time.Minute + time.Second,
			remaining: -time.Minute - time.Second,
			fresh:     false,
		},
		{
			name:      "stored in the future (clock step) counts no residence",
			e:         Entry{StoredAt: At(now.Add(time.Hour)), InitialAge: 2 * time.Second, Lifetime: time.Minute},
			age:       2 * time.Second,
			remaining: 58 * time.Second,
			fresh:     true,
		},
		{
			name:      "zero lifetime is never fresh",
			e:         Entry{StoredAt: At(now)},
			age:       0,
			remaining: 0,
			fresh:     false,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Age(now); got != tt.age {
				t.Errorf("Age = %v, want %v", got, tt.age)
			}
			if got := tt.e.Remaining(now); got != tt.remaining {
				t.Errorf("Remaining = %v, want %v", got, tt.remaining)
			}
			if got := tt.e.Fresh(now); got != tt.fresh {
				t.Errorf("Fresh = %v, want %v", got, tt.fresh)
			}
		})
	}
}

// benchEntry is a typical stored response: a 1 KiB body and six headers.
func benchEntry() *Entry {
	return &Entry{
		Kind:   KindResponse,
		Status: http.StatusOK,
		Header: MakeHeader(http.Header{
			"Content-Type":  {"application/json; charset=utf-8"},
			"Cache-Control": {"public, max-age=60"},
			"Etag":          {`W/"5f3c-1a2b3c"`},
			"Last-Modified": {"Sat, 01 Mar 2025 12:00:00 GMT"},
			"Vary":          {"Accept-Encoding"},
			"X-Request-Id":  {"0f8e2c1a-7d3b-4e59-9a61-2b7c4d8e1f00"},
		}),
		body:     strings.Repeat("x", 1024),
		StoredAt: At(t0),
		Lifetime: time.Minute,
		x:        &Extra{Vary: []string{"Accept-Encoding"}, Tags: []string{"player:ada", "leaderboard"}},
		URL:      "/players/ada?season=3",
		Seq:      12345,
	}
}

func BenchmarkEncode(b *testing.B) {
	e := benchEntry()
	b.ReportAllocs()
	b.SetBytes(int64(len(Encode(e))))
	for b.Loop() {
		_ = Encode(e)
	}
}

func BenchmarkDecode(b *testing.B) {
	data := Encode(benchEntry())
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
