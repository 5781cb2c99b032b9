package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteTable writes the report as a human table, one row per target:
// requests, req/s, avg, P50, P95, P99 and max latency in milliseconds,
// failures and the status counts.
func (r Report) WriteTable(w io.Writer) error {
	rows := [][]string{{"target", "requests", "req/s", "avg ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "failures", "status"}}
	for _, t := range r.Targets {
		rows = append(rows, []string{
			t.Name,
			strconv.FormatInt(t.Requests, 10),
			fmtRPS(t.RPS),
			fmtMS(t.AvgMS), fmtMS(t.P50MS), fmtMS(t.P95MS), fmtMS(t.P99MS), fmtMS(t.MaxMS),
			strconv.FormatInt(t.Failures, 10),
			FormatStatusCounts(t.StatusCounts),
		})
	}
	return writeColumns(w, rows, 9) // the status column is left-aligned
}

// MarshalJSON writes "targets" as [] rather than null when there is none.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	if r.Targets == nil {
		r.Targets = []TargetReport{}
	}
	return json.Marshal(plain(r))
}

// MarshalJSON writes "status_counts" as {} rather than null when empty.
func (t TargetReport) MarshalJSON() ([]byte, error) {
	type plain TargetReport
	if t.StatusCounts == nil {
		t.StatusCounts = map[string]int64{}
	}
	return json.Marshal(plain(t))
}

// Comparison is the `modellab bench --json` document:
// {"before": {"targets": […]}, "after": {"targets": […]}}.
type Comparison struct {
	Before Report `json:"before"`
	After  Report `json:"after"`
}

// WriteComparison writes the before/after table of `modellab bench`: per
// target, failures, req/s, avg, P95 and P99 as "before → after", and the
// speed-up (after req/s divided by before req/s). Targets are matched by
// name, in the order of before, then those only in after.
func WriteComparison(w io.Writer, before, after Report) error {
	rows := [][]string{{"target", "failures", "req/s", "avg ms", "p95 ms", "p99 ms", "speed-up"}}
	afterByName := map[string]TargetReport{}
	for _, t := range after.Targets {
		afterByName[t.Name] = t
	}
	seen := map[string]bool{}
	row := func(name string, b, a *TargetReport) []string {
		cell := func(f func(TargetReport) string) string {
			bs, as := "-", "-"
			if b != nil {
				bs = f(*b)
			}
			if a != nil {
				as = f(*a)
			}
			return bs + " → " + as
		}
		speedup := "-"
		if b != nil && a != nil {
			speedup = fmtSpeedup(b.RPS, a.RPS)
		}
		return []string{
			name,
			cell(func(t TargetReport) string { return strconv.FormatInt(t.Failures, 10) }),
			cell(func(t TargetReport) string { return fmtRPS(t.RPS) }),
			cell(func(t TargetReport) string { return fmtMS(t.AvgMS) }),
			cell(func(t TargetReport) string { return fmtMS(t.P95MS) }),
			cell(func(t TargetReport) string { return fmtMS(t.P99MS) }),
			speedup,
		}
	}
	for i := range before.Targets {
		b := &before.Targets[i]
		var a *TargetReport
		if t, ok := afterByName[b.Name]; ok {
			a = &t
		}
		seen[b.Name] = true
		rows = append(rows, row(b.Name, b, a))
	}
	for i := range after.Targets {
		a := &after.Targets[i]
		if !seen[a.Name] {
			rows = append(rows, row(a.Name, nil, a))
		}
	}
	return writeColumns(w, rows, -1)
}

// FormatStatusCounts formats status counts as "200:1234 503:5 error:2",
// status codes in numeric order and transport errors last.
func FormatStatusCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aerr := strconv.Atoi(keys[i])
		b, berr := strconv.Atoi(keys[j])
		switch {
		case aerr == nil && berr == nil:
			return a < b
		case aerr == nil || berr == nil:
			return aerr == nil // numbers first
		default:
			return keys[i] < keys[j]
		}
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.FormatInt(m[k], 10)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func fmtMS(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) }
func fmtRPS(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func fmtSpeedup(before, after float64) string {
	if before <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", after/before)
}

// writeColumns writes rows as aligned columns separated by two spaces: the
// first column left-aligned, the others right-aligned except column leftCol.
// Trailing spaces are not written.
func writeColumns(w io.Writer, rows [][]string, leftCol int) error {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				line.WriteString("  ")
			}
			if i == 0 || i == leftCol {
				line.WriteString(cell)
				line.WriteString(pad)
			} else {
				line.WriteString(pad)
				line.WriteString(cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
