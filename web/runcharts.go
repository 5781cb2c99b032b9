package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/modellab/modellab"
)

// The charts of training runs: one line chart per metric, steps along x.
// Series arrive downsampled to the plot's width by the service (LTTB, the
// same as the API's max_points), so every point drawn is a real point and
// the path never holds more vertices than the plot has pixels.

// runChartPoints is the max_points of the run page's read: one point per
// unit of the plot's width.
const runChartPoints = plotW

// runTableRows bounds the data table behind each chart: the same
// downsampling again, to a readable length.
const runTableRows = 50

// niceStep is the tick spacing for a span: 1, 2 or 5 times a power of ten,
// so that about n ticks cover it.
func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// valueRange pads [lo, hi] out to round ticks; a flat series gets a band
// around its value so that it draws as a line in the middle.
func valueRange(lo, hi float64) (float64, float64, float64) {
	if hi == lo {
		d := math.Max(math.Abs(lo)*0.1, 1e-9)
		lo, hi = lo-d, hi+d
	}
	step := niceStep(hi-lo, yTicks)
	return math.Floor(lo/step) * step, math.Ceil(hi/step) * step, step
}

// fmtValue prints a metric value in at most four significant digits:
// losses (2.314), learning rates (0.0003, 1e-05), throughputs (1.234e+04).
func fmtValue(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// fmtTick prints a tick value with no more digits than the tick step needs.
func fmtTick(v, step float64) string {
	if step < 1e-3 || math.Abs(v) >= 1e5 {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	digits := max(0, int(math.Ceil(-math.Log10(step))))
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// seriesStats summarises a series for the chart's text alternative.
type seriesStats struct {
	n                int
	first, last      modellab.MetricSample
	minimum, maximum modellab.MetricSample
}

func statsOf(pts []modellab.MetricSample) seriesStats {
	st := seriesStats{n: len(pts), first: pts[0], last: pts[len(pts)-1], minimum: pts[0], maximum: pts[0]}
	for _, p := range pts {
		if p.Value < st.minimum.Value {
			st.minimum = p
		}
		if p.Value > st.maximum.Value {
			st.maximum = p
		}
	}
	return st
}

// metricChart draws one series as an SVG line chart with its axes; id
// makes the title and description referable. An empty series draws the
// empty axes and says so.
func metricChart(id, key string, pts []modellab.MetricSample) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart run-chart" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-title %s-desc" preserveAspectRatio="xMidYMid meet">`, chartW, chartH, id, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s by step</title>`, id, esc(key))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<desc id="%s-desc">No points yet.</desc></svg>`, id)
		return template.HTML(b.String())
	}
	st := statsOf(pts)
	fmt.Fprintf(&b, `<desc id="%s-desc">%s points from step %s to step %s. Latest %s at step %s; lowest %s at step %s; highest %s at step %s.</desc>`,
		id, fmtInt(st.n), fmtInt(st.first.Step), fmtInt(st.last.Step), esc(fmtValue(st.last.Value)), fmtInt(st.last.Step),
		esc(fmtValue(st.minimum.Value)), fmtInt(st.minimum.Step), esc(fmtValue(st.maximum.Value)), fmtInt(st.maximum.Step))
	lo, hi, ystep := valueRange(st.minimum.Value, st.maximum.Value)
	x0, x1 := float64(st.first.Step), float64(st.last.Step)
	if x1 == x0 {
		x0, x1 = x0-1, x1+1
	}
	px := func(step float64) float64 { return padL + plotW*(step-x0)/(x1-x0) }
	py := func(v float64) float64 { return padT + plotH - plotH*(v-lo)/(hi-lo) }
	for i, n := 0, int(math.Round((hi-lo)/ystep)); i <= n; i++ {
		v := lo + float64(i)*ystep
		y := py(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-6, y, esc(fmtTick(v, ystep)))
	}
	// Steps are integers: so are the ticks, and adding them is exact.
	xstep := math.Max(1, niceStep(x1-x0, xLabelsMax))
	for v := math.Ceil(x0/xstep) * xstep; v <= x1; v += xstep {
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, px(v), chartH-8, fmtAxis(v))
	}
	b.WriteString(`<path class="line" d="`)
	for i, p := range pts {
		if i == 0 {
			b.WriteByte('M')
		} else {
			b.WriteByte('L')
		}
		b.WriteString(strconv.FormatFloat(px(float64(p.Step)), 'f', 1, 64))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatFloat(py(p.Value), 'f', 1, 64))
	}
	b.WriteString(`"/>`)
	fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3"><title>step %s: %s</title></circle>`,
		px(float64(st.last.Step)), py(st.last.Value), fmtInt(st.last.Step), esc(fmtValue(st.last.Value)))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// runSparkline is the monitor's small line of one metric of a run.
func runSparkline(key string, pts []modellab.MetricSample) template.HTML {
	var b strings.Builder
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<svg class="run-spark" viewBox="0 0 %d %d" role="img" aria-label="No %s points yet" preserveAspectRatio="none"><line class="spark-line" x1="0" y1="%d" x2="%d" y2="%d"/></svg>`,
			runSparkW, runSparkH, esc(key), runSparkH/2, runSparkW, runSparkH/2)
		return template.HTML(b.String())
	}
	st := statsOf(pts)
	fmt.Fprintf(&b, `<svg class="run-spark" viewBox="0 0 %d %d" role="img" aria-label="%s from %s at step %s to %s at step %s" preserveAspectRatio="none">`,
		runSparkW, runSparkH, esc(key), esc(fmtValue(st.first.Value)), fmtInt(st.first.Step), esc(fmtValue(st.last.Value)), fmtInt(st.last.Step))
	lo, hi := st.minimum.Value, st.maximum.Value
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	x0, x1 := float64(st.first.Step), float64(max(st.last.Step, st.first.Step+1))
	b.WriteString(`<path class="spark-line" d="`)
	for i, p := range pts {
		x := float64(runSparkW) * (float64(p.Step) - x0) / (x1 - x0)
		y := float64(runSparkH-sparkPad) - float64(runSparkH-2*sparkPad)*(p.Value-lo)/(hi-lo)
		if i == 0 {
			fmt.Fprintf(&b, "M%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&b, "L%.1f %.1f", x, y)
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String())
}

const runSparkW, runSparkH = 120, 28
