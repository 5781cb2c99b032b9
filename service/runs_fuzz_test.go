package service

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/modellab/modellab"
)

// FuzzMetricQuery: parsing never panics, refuses only with
// invalid_argument naming a parameter, and what it accepts is valid and
// canonical: parsing its own spelling again gives the same key.
func FuzzMetricQuery(f *testing.F) {
	for _, s := range []string{"", "keys=loss,lr&after_step=10&max_points=500", "keys=,,a", "max_points=2", "after_step=9007199254740991"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseMetricQuery(v)
		if err != nil {
			if modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) == "" {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if err := q.Valid(); err != nil {
			t.Fatalf("%q accepted as %+v, which is invalid: %v", raw, q, err)
		}
		again := url.Values{"keys": {strings.Join(q.Keys, ",")}, "max_points": {strconv.Itoa(q.MaxPoints)}}
		if q.AfterStep >= 0 {
			again.Set("after_step", strconv.FormatInt(q.AfterStep, 10))
		}
		q2, err := ParseMetricQuery(again)
		if err != nil || keyRunMetrics("u", "r", q2) != keyRunMetrics("u", "r", q) {
			t.Fatalf("%q: canonical spelling %v parses to %+v, %v; want %+v", raw, again, q2, err, q)
		}
	})
}
