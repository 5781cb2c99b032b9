package loadtest

import (
	"fmt"
	"io"
	"strconv"
)

// Reference is a published result, printed beside ours. The original
// app's write-up gives its six pages' figures after its fix only as ranges
// across the pages, so a reference holds a range; factors are taken
// against the best end of it (the most favourable to them).
type Reference struct {
	Target   string // our target name
	Page     string // as the publication names it
	Failures int64
	// RPS and P95MS are [low, high] across the published pages.
	RPS   [2]float64
	P95MS [2]float64
}

// publishedAfter is what the original app's write-up reports after its fix,
// at 200 concurrent connections, for each of its six pages: 0 failures,
// 76–88 req/s, a P95 of 3.8–8.8 s (the average is not given per page).
var publishedAfter = Reference{RPS: [2]float64{76, 88}, P95MS: [2]float64{3800, 8800}}

// OriginalAfter lists the six pages of that load test in its order, each
// with the published ranges. `modellab bench` prints it beside its cache-on
// run.
var OriginalAfter = func() []Reference {
	var out []Reference
	for _, p := range [][2]string{{"home", "Home"}, {"models", "Models"}, {"monitor", "Training Monitor"},
		{"docs", "Docs"}, {"academy", "Lab Academy"}, {"chat", "Chat"}} {
		r := publishedAfter
		r.Target, r.Page = p[0], p[1]
		out = append(out, r)
	}
	return out
}()

// WriteReference writes ours (rep) beside each reference, row by row:
// failures, req/s and P95, with the factors ours/theirs for req/s (against
// their best req/s; above 1: we serve more) and for P95 (against their best
// P95; below 1: our slow requests are faster). A reference whose target rep
// did not run says so.
func WriteReference(w io.Writer, rep Report, refs []Reference) error {
	rows := [][]string{{"target", "page", "failures ours/theirs", "req/s ours", "theirs", "ours/best",
		"avg ms ours", "p95 ms ours", "theirs", "ours/best"}}
	byName := map[string]TargetReport{}
	for _, t := range rep.Targets {
		byName[t.Name] = t
	}
	for _, ref := range refs {
		rps := fmtRPS(ref.RPS[0]) + "–" + fmtRPS(ref.RPS[1])
		p95 := fmtMS(ref.P95MS[0]) + "–" + fmtMS(ref.P95MS[1])
		fails := strconv.FormatInt(ref.Failures, 10)
		t, ok := byName[ref.Target]
		if !ok {
			rows = append(rows, []string{ref.Target, ref.Page, "- / " + fails, "not run", rps, "-", "-", "-", p95, "-"})
			continue
		}
		rows = append(rows, []string{ref.Target, ref.Page,
			strconv.FormatInt(t.Failures, 10) + " / " + fails,
			fmtRPS(t.RPS), rps, fmtFactor(t.RPS, ref.RPS[1]),
			fmtMS(t.AvgMS), fmtMS(t.P95MS), p95, fmtFactor(t.P95MS, ref.P95MS[0]),
		})
	}
	return writeColumns(w, rows, 1)
}

// fmtFactor is ours/theirs with enough digits to read a small factor.
func fmtFactor(ours, theirs float64) string {
	if theirs <= 0 {
		return "n/a"
	}
	f := ours / theirs
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0fx", f)
	case f >= 1:
		return fmt.Sprintf("%.2fx", f)
	default:
		return fmt.Sprintf("%.4fx", f)
	}
}
