package promtest

import (
	"maps"
	"slices"
	"testing"
)

const exposition = `# HELP c_total A counter.
# TYPE c_total counter
c_total 3
c_total{kind="url"} 1
# TYPE g gauge
g 1.5
# TYPE h histogram
h_bucket{result="MISS",le="0.1"} 1
h_bucket{result="MISS",le="+Inf"} 2
h_sum{result="MISS"} 0.3
h_count{result="MISS"} 2
# TYPE s summary
s{quantile="0.5"} 1
s_sum 4
s_count 2
`

func TestFamilies(t *testing.T) {
	f := Parse(t, exposition)
	if v, ok := f.Value("c_total"); !ok || v != 3 {
		t.Errorf("Value(c_total) = %v %v, want the unlabelled 3", v, ok)
	}
	if v, ok := f.Value("g"); !ok || v != 1.5 {
		t.Errorf("Value(g) = %v %v", v, ok)
	}
	if _, ok := f.Value("absent"); ok {
		t.Error("Value(absent) found")
	}
	if m := f.Series("c_total", "kind", "url"); m.GetCounter().GetValue() != 1 {
		t.Errorf("Series(c_total, kind, url) = %v", m)
	}
	if m := f.Series("h", "result", "MISS"); m.GetHistogram().GetSampleCount() != 2 {
		t.Errorf("Series(h, result, MISS) = %v", m)
	}
	if f.Series("h", "result", "HIT") != nil {
		t.Error("Series(h, result, HIT) found")
	}
	for name, want := range map[string][]string{
		"c_total": {"kind"}, "g": {}, "h_bucket": {"le", "result"}, "h_sum": {"result"}, "h_count": {"result"},
		"s": {"quantile"}, "s_sum": {}, "s_count": {},
	} {
		got, ok := f.Labels(name)
		if !ok || !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
			t.Errorf("Labels(%s) = %v %v, want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"h", "s_bucket", "absent", "g_sum"} {
		if got, ok := f.Labels(name); ok {
			t.Errorf("Labels(%s) = %v, want no such samples", name, got)
		}
	}
}
