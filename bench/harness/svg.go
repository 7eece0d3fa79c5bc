package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// hotChart draws the hot scenario as two grouped bar charts side by side,
// throughput and p99, one group per load and one bar per system. Written
// by hand: a few rectangles do not need a plotting library.
func hotChart(rs []row) string {
	var variants, systems []string
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen["v"+r.Variant] {
			seen["v"+r.Variant] = true
			variants = append(variants, r.Variant)
		}
		if !seen["s"+r.System] {
			seen["s"+r.System] = true
			systems = append(systems, r.System)
		}
	}
	value := func(system, variant string, p99 bool) float64 {
		for _, r := range rs {
			if r.System == system && r.Variant == variant {
				if p99 {
					return r.P99
				}
				return r.RPS
			}
		}
		return 0
	}
	colors := []string{"#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"}
	const (
		panelW, panelH = 460.0, 260.0
		left, top      = 70.0, 50.0
		gap            = 60.0
	)
	width := left + 2*panelW + gap + 20
	height := top + panelH + 70 + 20*float64((len(systems)+4)/5)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="bold">Hot keys: throughput (higher is better) and p99 latency (lower is better)</text>`+"\n", left)
	for p, title := range []string{"requests per second", "p99 latency, ms"} {
		x0 := left + float64(p)*(panelW+gap)
		var maxV float64
		for _, s := range systems {
			for _, v := range variants {
				maxV = math.Max(maxV, value(s, v, p == 1))
			}
		}
		scale := niceCeil(maxV)
		fmt.Fprintf(&b, `<text x="%.0f" y="40" font-weight="bold">%s</text>`+"\n", x0, title)
		// Axis and grid.
		for i := 0; i <= 4; i++ {
			v := scale * float64(i) / 4
			y := top + panelH - panelH*float64(i)/4
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+panelW, y)
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-4, y+4, axisLabel(v))
		}
		groupW := panelW / float64(len(variants))
		barW := (groupW - 16) / float64(len(systems))
		for gi, v := range variants {
			gx := x0 + float64(gi)*groupW + 8
			for si, s := range systems {
				val := value(s, v, p == 1)
				hgt := 0.0
				if scale > 0 {
					hgt = panelH * val / scale
				}
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s</title></rect>`+"\n",
					gx+float64(si)*barW, top+panelH-hgt, barW-1, hgt, colors[si%len(colors)],
					html.EscapeString(s), html.EscapeString(v), axisLabel(val))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx+(groupW-16)/2, top+panelH+16, html.EscapeString(v))
		}
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", x0, top+panelH, x0+panelW, top+panelH)
	}
	// Legend.
	perRow := 5
	for si, s := range systems {
		x := left + float64(si%perRow)*190
		y := top + panelH + 45 + 20*float64(si/perRow)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			x, y-10, colors[si%len(colors)], x+18, y, html.EscapeString(s))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	switch {
	case v >= 1000:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1000), ".0") + "k"
	case v >= 10 || v == 0:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
