package loadtest

import (
	"fmt"
	"io"
	"strconv"
)

// Reference is a published result of one page, printed beside ours.
type Reference struct {
	Target   string // our target name
	Page     string // as the publication names it
	Failures int64
	RPS      float64
	AvgMS    float64
	P95MS    float64
}

// DesignNoteAfter is the design note's own table: the original app after
// its fix, at 200 concurrent connections: 0 failures on every page, roughly
// 76–88 req/s, P95 between 3.8 and 8.8 s. `modellab bench` prints it beside
// its cache-on run.
var DesignNoteAfter = []Reference{
	{Target: "home", Page: "Home", RPS: 88, AvgMS: 2150, P95MS: 3800},
	{Target: "models", Page: "Models", RPS: 80, AvgMS: 2400, P95MS: 5200},
	{Target: "monitor", Page: "Training Monitor", RPS: 78, AvgMS: 2500, P95MS: 6100},
	{Target: "docs", Page: "Docs", RPS: 86, AvgMS: 2250, P95MS: 4300},
	{Target: "academy", Page: "Lab Academy", RPS: 82, AvgMS: 2350, P95MS: 5600},
	{Target: "chat", Page: "Chat", RPS: 76, AvgMS: 2600, P95MS: 8800},
}

// WriteReference writes ours (rep) beside each reference, row by row:
// failures, req/s, avg and P95, with the factors ours/theirs for req/s
// (above 1: we serve more) and for P95 (below 1: our slow requests are
// faster). A reference whose target rep did not run says so.
func WriteReference(w io.Writer, rep Report, refs []Reference) error {
	rows := [][]string{{"target", "page", "failures ours/theirs", "req/s ours", "theirs", "ours/theirs",
		"avg ms ours", "theirs", "p95 ms ours", "theirs", "ours/theirs"}}
	byName := map[string]TargetReport{}
	for _, t := range rep.Targets {
		byName[t.Name] = t
	}
	for _, ref := range refs {
		theirs := []string{strconv.FormatInt(ref.Failures, 10), fmtRPS(ref.RPS), fmtMS(ref.AvgMS), fmtMS(ref.P95MS)}
		t, ok := byName[ref.Target]
		if !ok {
			rows = append(rows, []string{ref.Target, ref.Page, "- / " + theirs[0], "not run", theirs[1], "-",
				"-", theirs[2], "-", theirs[3], "-"})
			continue
		}
		rows = append(rows, []string{ref.Target, ref.Page,
			strconv.FormatInt(t.Failures, 10) + " / " + theirs[0],
			fmtRPS(t.RPS), theirs[1], fmtFactor(t.RPS, ref.RPS),
			fmtMS(t.AvgMS), theirs[2],
			fmtMS(t.P95MS), theirs[3], fmtFactor(t.P95MS, ref.P95MS),
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
