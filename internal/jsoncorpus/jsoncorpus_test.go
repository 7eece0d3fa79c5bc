package jsoncorpus

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"testing"
)

// The corpus is what the package says: valid JSON, deterministic, sizes
// within bounds with a median near 4 KiB, and gzip -6 to about a third.
func TestCorpus(t *testing.T) {
	const n = 400
	sizes := make([]int, 0, n)
	var raw, zipped int
	for id := range n {
		p := Page(id)
		if !json.Valid(p) {
			t.Fatalf("page %d is not valid JSON", id)
		}
		if !bytes.Equal(p, Page(id)) {
			t.Fatalf("page %d differs between calls", id)
		}
		if len(p) < MinSize || len(p) > MaxSize+512 {
			t.Errorf("page %d: %d bytes, outside [%d, %d]", id, len(p), MinSize, MaxSize+512)
		}
		sizes = append(sizes, len(p))
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, 6)
		w.Write(p)
		w.Close()
		raw += len(p)
		zipped += z.Len()
	}
	slices.Sort(sizes)
	med, ratio := sizes[n/2], float64(zipped)/float64(raw)
	t.Logf("median %d B, mean %d B, gzip -6 ratio %.3f", med, raw/n, ratio)
	if med < 3<<10 || med > 5<<10 {
		t.Errorf("median page %d B, want about 4 KiB", med)
	}
	if ratio < 0.2 || ratio > 0.45 {
		t.Errorf("gzip ratio %.3f, want about a third", ratio)
	}
}
