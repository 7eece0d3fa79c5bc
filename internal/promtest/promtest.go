// Package promtest reads a Prometheus text exposition (a /metrics body) in
// tests with Prometheus's own parser (prometheus/common/expfmt), so that no
// test carries a parser of its own and what the tests read is what a
// Prometheus server would.
package promtest

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed exposition: each metric family by its name.
type Families map[string]*dto.MetricFamily

// Parse parses a text exposition; the test fails if it does not parse.
func Parse(t testing.TB, text string) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return mf
}

// Series returns the first metric of family name whose label key has
// value, or nil if there is none.
func (f Families) Series(name, key, value string) *dto.Metric {
	for _, m := range f[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == key && l.GetValue() == value {
				return m
			}
		}
	}
	return nil
}

// Value returns the value of the unlabelled counter, gauge or untyped
// metric name, and whether there is one.
func (f Families) Value(name string) (float64, bool) {
	for _, m := range f[name].GetMetric() {
		if len(m.GetLabel()) > 0 {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// Labels returns the label names of the samples named name, and whether
// the exposition has such samples: name is a family of single values
// (counter, gauge, untyped), a summary (its quantiles, with the label
// quantile), or a histogram's or summary's _bucket (with le), _sum or
// _count series. A histogram's bare name names no sample.
func (f Families) Labels(name string) (map[string]bool, bool) {
	family, extra := f[name], ""
	switch family.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		family = nil
	case dto.MetricType_SUMMARY:
		extra = "quantile"
	}
	if family == nil {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if !ok {
				continue
			}
			switch f[base].GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				family = f[base]
				if suffix == "_bucket" {
					extra = "le"
				}
			case dto.MetricType_SUMMARY:
				if suffix != "_bucket" {
					family = f[base]
				}
			}
		}
	}
	if family == nil {
		return nil, false
	}
	labels := map[string]bool{}
	for _, m := range family.GetMetric() {
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = true
		}
		if extra != "" {
			labels[extra] = true
		}
	}
	return labels, true
}
