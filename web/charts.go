package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// Charts are drawn here as inline SVG: no script, no library, readable
// without JavaScript, styled by the page's CSS (classes, not inline
// styles, which the CSP forbids). Every chart has a text alternative.

// maxBars bounds the bars of a chart; longer series are merged so that a
// year of hours stays a readable (and small) picture.
const maxBars = 240

// downsample merges adjacent points so that at most max remain; per is how
// many buckets each returned point covers.
func downsample(s []modellab.SeriesPoint, max int) (out []modellab.SeriesPoint, per int) {
	if len(s) <= max {
		return s, 1
	}
	per = (len(s) + max - 1) / max
	for i := 0; i < len(s); i += per {
		p := modellab.SeriesPoint{T: s[i].T}
		var latSum float64
		for _, q := range s[i:min(i+per, len(s))] {
			p.Requests += q.Requests
			p.Errors += q.Errors
			p.Tokens += q.Tokens
			latSum += q.AvgLatencyMS * float64(q.Requests)
		}
		if p.Requests > 0 {
			p.AvgLatencyMS = latSum / float64(p.Requests)
		}
		out = append(out, p)
	}
	return out, per
}

func bucketLabel(interval string, per int) string {
	unit := "hour"
	if interval == modellab.IntervalDay {
		unit = "day"
	}
	if per == 1 {
		return "one " + unit
	}
	return strconv.Itoa(per) + " " + unit + "s"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so that the
// axis has round ticks.
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

func fmtAxis(v float64) string {
	switch {
	case v >= 1e9:
		return trimZero(v/1e9) + "G"
	case v >= 1e6:
		return trimZero(v/1e6) + "M"
	case v >= 1e3:
		return trimZero(v/1e3) + "k"
	}
	return trimZero(v)
}

func trimZero(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

func fmtBucket(t time.Time, interval string) string {
	if interval == modellab.IntervalHour {
		return t.UTC().Format("Jan 2 15:04")
	}
	return t.UTC().Format("Jan 2")
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// Plot geometry shared by the two analytics charts (viewBox units).
const (
	chartW, chartH           = 800, 240
	padL, padR, padT, padB   = 56, 12, 12, 28
	plotW, plotH             = chartW - padL - padR, chartH - padT - padB
	yTicks                   = 4
	xLabelsMax               = 6
	sparkW, sparkH, sparkPad = 320, 64, 2
)

// axes draws the horizontal grid with its labels and a few time labels.
func axes(b *strings.Builder, top float64, s []modellab.SeriesPoint, interval, unit string) {
	for i := 0; i <= yTicks; i++ {
		v := top * float64(i) / yTicks
		y := padT + plotH - plotH*float64(i)/yTicks
		fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text class="tick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s%s</text>`, padL-6, y, fmtAxis(v), unit)
	}
	n := len(s)
	if n == 0 {
		return
	}
	step := max(1, (n+xLabelsMax-1)/xLabelsMax)
	slot := float64(plotW) / float64(n)
	for i := 0; i < n; i += step {
		x := padL + slot*(float64(i)+0.5)
		fmt.Fprintf(b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, chartH-8, esc(fmtBucket(s[i].T, interval)))
	}
}

// requestsChart draws one bar per bucket, its errors stacked in red.
func requestsChart(s []modellab.SeriesPoint, interval string) template.HTML {
	var peak int64
	var total, errs int64
	for _, p := range s {
		peak = max(peak, p.Requests)
		total += p.Requests
		errs += p.Errors
	}
	top := niceCeil(float64(peak))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="req-title req-desc" preserveAspectRatio="xMidYMid meet">`, chartW, chartH)
	fmt.Fprintf(&b, `<title id="req-title">Requests per bucket</title><desc id="req-desc">%s requests, %s errors, peak %s in one bucket, over %d buckets.</desc>`,
		fmtInt(total), fmtInt(errs), fmtInt(peak), len(s))
	axes(&b, top, s, interval, "")
	slot := float64(plotW) / float64(max(1, len(s)))
	bw := math.Max(1, slot*0.78)
	for i, p := range s {
		x := padL + slot*float64(i) + (slot-bw)/2
		hOK := plotH * float64(p.Requests-p.Errors) / top
		hErr := plotH * float64(p.Errors) / top
		base := float64(padT + plotH)
		fmt.Fprintf(&b, `<g class="bar"><title>%s: %s requests, %s errors</title>`, esc(fmtBucket(p.T, interval)), fmtInt(p.Requests), fmtInt(p.Errors))
		// A transparent full-height target makes empty buckets hoverable too.
		fmt.Fprintf(&b, `<rect class="hit" x="%.1f" y="%d" width="%.1f" height="%d"/>`, padL+slot*float64(i), padT, slot, plotH)
		if hOK > 0 {
			fmt.Fprintf(&b, `<rect class="ok" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, base-hOK, bw, hOK)
		}
		if hErr > 0 {
			fmt.Fprintf(&b, `<rect class="err" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x, base-hOK-hErr, bw, hErr)
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// latencyChart draws the average latency as a line; buckets without
// requests break the line rather than pretending a zero latency.
func latencyChart(s []modellab.SeriesPoint, interval string) template.HTML {
	var peak float64
	for _, p := range s {
		if p.Requests > 0 {
			peak = math.Max(peak, p.AvgLatencyMS)
		}
	}
	top := niceCeil(peak)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="lat-title lat-desc" preserveAspectRatio="xMidYMid meet">`, chartW, chartH)
	fmt.Fprintf(&b, `<title id="lat-title">Average latency per bucket</title><desc id="lat-desc">Highest average latency %s.</desc>`, esc(fmtMS(peak)))
	axes(&b, top, s, interval, " ms")
	slot := float64(plotW) / float64(max(1, len(s)))
	var path strings.Builder
	pen := false
	for i, p := range s {
		if p.Requests == 0 {
			pen = false
			continue
		}
		x := padL + slot*(float64(i)+0.5)
		y := float64(padT+plotH) - plotH*p.AvgLatencyMS/top
		if pen {
			fmt.Fprintf(&path, "L%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&path, "M%.1f %.1f", x, y)
		}
		pen = true
	}
	if path.Len() > 0 {
		fmt.Fprintf(&b, `<path class="line" d="%s"/>`, path.String())
	}
	for i, p := range s {
		if p.Requests == 0 || len(s) > 60 {
			continue
		}
		x := padL + slot*(float64(i)+0.5)
		y := float64(padT+plotH) - plotH*p.AvgLatencyMS/top
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3"><title>%s: %s</title></circle>`, x, y, esc(fmtBucket(p.T, interval)), esc(fmtMS(p.AvgLatencyMS)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// sparkline is the home page's small area chart of requests.
func sparkline(s []modellab.SeriesPoint, interval string) template.HTML {
	var peak, total int64
	for _, p := range s {
		peak = max(peak, p.Requests)
		total += p.Requests
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" role="img" aria-label="Requests per %s over the last 7 days: %s in total, at most %s in one %s." preserveAspectRatio="none">`,
		sparkW, sparkH, interval, fmtInt(total), fmtInt(peak), interval)
	if len(s) == 0 || peak == 0 {
		fmt.Fprintf(&b, `<line class="spark-line" x1="0" y1="%d" x2="%d" y2="%d"/></svg>`, sparkH-sparkPad, sparkW, sparkH-sparkPad)
		return template.HTML(b.String())
	}
	step := float64(sparkW) / float64(max(1, len(s)-1))
	var line strings.Builder
	for i, p := range s {
		x := step * float64(i)
		y := float64(sparkH-sparkPad) - float64(sparkH-2*sparkPad)*float64(p.Requests)/float64(peak)
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&line, "L%.1f %.1f", x, y)
		}
	}
	fmt.Fprintf(&b, `<path class="spark-area" d="%sL%d %dL0 %dZ"/>`, line.String(), sparkW, sparkH, sparkH)
	fmt.Fprintf(&b, `<path class="spark-line" d="%s"/>`, line.String())
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// stateBar is a stacked bar of server states with the counts in its title.
func stateBar(sum service.ServerSummary) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="statebar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="%d running, %d starting, %d stopped, %d in error">`,
		sum.Running, sum.Starting, sum.Stopped, sum.Error)
	if sum.Total == 0 {
		b.WriteString(`<rect class="st-none" x="0" y="0" width="100" height="8"/></svg>`)
		return template.HTML(b.String())
	}
	x := 0.0
	for _, seg := range []struct {
		class string
		n     int
	}{{"st-running", sum.Running}, {"st-starting", sum.Starting}, {"st-stopped", sum.Stopped}, {"st-error", sum.Error}} {
		if seg.n == 0 {
			continue
		}
		w := 100 * float64(seg.n) / float64(sum.Total)
		fmt.Fprintf(&b, `<rect class="%s" x="%.2f" y="0" width="%.2f" height="8"/>`, seg.class, x, w)
		x += w
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
