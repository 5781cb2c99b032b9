package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

func TestDigestModelsRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		models []digestModel
	}{
		{"none", nil},
		{"one", []digestModel{{"mdl_a", rollupSums{1, 0, 10, 20, 30, 40}}}},
		{"large sums", []digestModel{{"m", rollupSums{1 << 40, 1 << 39, 1 << 50, 1 << 51, 1 << 62, 1 << 45}}}},
		{"several", []digestModel{{"", rollupSums{requests: 2}}, {"mdl_a", rollupSums{3, 1, 4, 1, 5, 9}}, {"mdl_b", rollupSums{2, 6, 5, 3, 5, 8}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeModels(encodeModels(tt.models))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != len(tt.models) || len(got) > 0 && !reflect.DeepEqual(got, tt.models) {
				t.Errorf("got %+v, want %+v", got, tt.models)
			}
		})
	}
}

func TestDigestLatencyRoundTrip(t *testing.T) {
	want := latencyCounts{zeroBucket: 3, 0: 1, 17: 2, 900: 5, 1107: 1}
	got := latencyCounts{}
	if err := addLatency(got, encodeLatency(want)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := addLatency(got, encodeLatency(latencyCounts{17: 1})); err != nil || got[17] != 3 {
		t.Errorf("adding a second day: bucket 17 holds %d (%v), want 3", got[17], err)
	}
}

// TestDigestMalformed: a blob that is cut short, of an unknown layout, or
// longer than its count says is an error, never a wrong sum.
func TestDigestMalformed(t *testing.T) {
	models := encodeModels([]digestModel{{"mdl_a", rollupSums{3, 1, 4, 1, 5, 9}}, {"mdl_b", rollupSums{2, 6, 5, 3, 5, 8}}})
	latency := encodeLatency(latencyCounts{1: 2, 300: 7})
	tests := []struct {
		name string
		blob []byte
	}{
		{"empty", nil},
		{"unknown layout", append([]byte{digestFormat + 1}, models[1:]...)},
		{"cut in a name", models[:5]},
		{"cut in a sum", models[:len(models)-1]},
		{"trailing bytes", append(append([]byte{}, models...), 0)},
		{"count too large", append([]byte{digestFormat, 200}, models[2:]...)},
	}
	for _, tt := range tests {
		t.Run("models/"+tt.name, func(t *testing.T) {
			if _, err := decodeModels(tt.blob); !errors.Is(err, errDigest) {
				t.Errorf("decode: %v, want errDigest", err)
			}
		})
	}
	for _, tt := range []struct {
		name string
		blob []byte
	}{{"empty", nil}, {"cut", latency[:len(latency)-1]}, {"trailing bytes", append(append([]byte{}, latency...), 1)}} {
		t.Run("latency/"+tt.name, func(t *testing.T) {
			if err := addLatency(latencyCounts{}, tt.blob); !errors.Is(err, errDigest) {
				t.Errorf("decode: %v, want errDigest", err)
			}
		})
	}
}

func TestMergeModels(t *testing.T) {
	a := []digestModel{{"a", rollupSums{requests: 1}}, {"c", rollupSums{requests: 2, errors: 1}}}
	b := []digestModel{{"b", rollupSums{requests: 5}}, {"c", rollupSums{requests: 3, latencyUS: 7}}, {"d", rollupSums{requests: 1}}}
	want := []digestModel{{"a", rollupSums{requests: 1}}, {"b", rollupSums{requests: 5}},
		{"c", rollupSums{requests: 5, errors: 1, latencyUS: 7}}, {"d", rollupSums{requests: 1}}}
	if got := mergeModels(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestDigestsConcurrentIngest: ingests that touch the same users' days at
// the same time lose none of each other's sums in the digests, which are
// read, merged and rewritten (the answers equal the events').
func TestDigestsConcurrentIngest(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			db := openMigrated(t, engine)
			r := rand.New(rand.NewPCG(13, 17))
			start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			events := randomEvents(r, 4000, start)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				part := events[w*500 : (w+1)*500]
				wg.Go(func() {
					for len(part) > 0 {
						n := min(len(part), 25)
						if err := db.InsertEvents(context.Background(), part[:n]); err != nil {
							errs <- err
							return
						}
						part = part[n:]
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			checkAgainstEvents(t, db, r, start, 60)
		})
	}
}

func TestDenseBuckets(t *testing.T) {
	if top := latencyBucket(modellab.MaxLatencyMS*1000) - zeroBucket; top >= denseBuckets {
		t.Errorf("the longest latency's bucket is at %d, past denseBuckets %d", top, denseBuckets)
	}
}

// TestDigestsExtremeLatencies: latencies of 0 and of the longest allowed
// reach the digests' histogram and its percentile as they do the events'.
func TestDigestsExtremeLatencies(t *testing.T) {
	for _, engine := range []string{EngineSQLite, EnginePostgres} {
		t.Run(engine, func(t *testing.T) {
			db := openMigrated(t, engine)
			ctx := context.Background()
			day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			var events []modellab.Event
			for i, lat := range []float64{0, 0, 0, modellab.MaxLatencyMS, modellab.MaxLatencyMS, 0.001, 5, 250} {
				events = append(events, modellab.Event{UserID: "usr_x", ModelID: "mdl_1", Timestamp: day.Add(time.Duration(i) * time.Hour),
					LatencyMS: lat, Status: modellab.EventOK})
			}
			if err := db.InsertEvents(ctx, events); err != nil {
				t.Fatal(err)
			}
			defaultExact := exactP95Max
			exactP95Max = 0
			t.Cleanup(func() { exactP95Max = defaultExact })
			for _, q := range []modellab.AnalyticsQuery{
				{From: day, To: day.Add(24 * time.Hour), Interval: modellab.IntervalDay},
				{From: day.Add(-24 * time.Hour), To: day.Add(48 * time.Hour), Interval: modellab.IntervalHour},
			} {
				got, err := db.Analytics(ctx, "usr_x", q)
				if err != nil {
					t.Fatal(err)
				}
				want, err := db.analyticsFromEvents(ctx, "usr_x", q)
				if err != nil {
					t.Fatal(err)
				}
				gp, wp := got.Totals.P95LatencyMS, want.Totals.P95LatencyMS
				if math.Abs(gp-wp) > latencyAlpha*wp+0.0005 {
					t.Errorf("%v: p95 %v, events say %v", q.From, gp, wp)
				}
				got.Totals.P95LatencyMS = wp
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%v:\ndigests %+v\nevents  %+v", q.From, got, want)
				}
			}
		})
	}
}

// TestMergeDigest: days' blobs merged by mergeDigest sum as mergeModels
// does, in byte order of the ids, with each blob's own total; a blob whose
// ids are out of order or repeated is refused.
func TestMergeDigest(t *testing.T) {
	days := [][]digestModel{
		{{"mdl_b", rollupSums{1, 0, 2, 3, 4, 5}}, {"mdl_d", rollupSums{2, 1, 1, 1, 1, 1}}},
		{{"mdl_a", rollupSums{5, 1, 0, 0, 9, 100}}, {"mdl_d", rollupSums{1, 1, 1, 1, 1, 1}}, {"mdl_e", rollupSums{7, 0, 0, 0, 0, 1 << 40}}},
		{},
		{{"mdl_c", rollupSums{1, 1, 1, 1, 1, 1}}},
	}
	got := newModelTotals(0)
	defer got.release()
	var want []digestModel
	for _, day := range days {
		var wantAll rollupSums
		for _, m := range day {
			wantAll.add(m.sums)
		}
		all, err := got.mergeDigest(encodeModels(day))
		if err != nil || all != wantAll {
			t.Fatalf("mergeDigest(%v) = %+v, %v; want %+v", day, all, err, wantAll)
		}
		want = mergeModels(want, day)
	}
	got.reindex()
	if len(got.ids) != len(want) {
		t.Fatalf("got %v, want %v", got.ids, want)
	}
	for i, m := range want {
		if got.ids[i] != m.model || got.sums[i] != m.sums || got.index[m.model] != int32(i) {
			t.Errorf("model %d: %q %+v (index %d), want %q %+v", i, got.ids[i], got.sums[i], got.index[m.model], m.model, m.sums)
		}
	}
	for _, bad := range [][]digestModel{
		{{"mdl_b", rollupSums{}}, {"mdl_a", rollupSums{}}},
		{{"mdl_a", rollupSums{}}, {"mdl_a", rollupSums{}}},
	} {
		if _, err := newModelTotals(0).mergeDigest(encodeModels(bad)); !errors.Is(err, errDigest) {
			t.Errorf("mergeDigest(%v): %v, want errDigest", bad, err)
		}
	}
}

// TestBucketOf: ranks are counted in bucket order across the array and
// the buckets outside it.
func TestBucketOf(t *testing.T) {
	h := newBucketCounts()
	defer h.release()
	h.add(zeroBucket-5, 1) // outside the array, below it
	h.add(zeroBucket, 2)
	h.add(700, 3)
	h.add(zeroBucket+denseBuckets+9, 4) // above it
	for _, tt := range []struct {
		rank int64
		want int64
		ok   bool
	}{{1, zeroBucket - 5, true}, {2, zeroBucket, true}, {3, zeroBucket, true}, {4, 700, true}, {6, 700, true},
		{7, zeroBucket + denseBuckets + 9, true}, {10, zeroBucket + denseBuckets + 9, true}, {11, 0, false}} {
		if got, ok := h.bucketOf(tt.rank); got != tt.want || ok != tt.ok {
			t.Errorf("bucketOf(%d) = %d, %v; want %d, %v", tt.rank, got, ok, tt.want, tt.ok)
		}
	}
}

// TestByRequests: the packed keys' order is the comparison's (requests,
// most first, then id), with ties, with ids in order or not, and with a
// count too large to pack.
func TestByRequests(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tt := range []struct {
		name   string
		sorted bool
		big    bool
	}{{"ids in order", true, false}, {"ids out of order", false, false}, {"count too large to pack", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			m := &modelTotals{index: map[string]int32{}}
			for range 300 {
				m.add(fmt.Sprintf("mdl_%05d", r.IntN(100000)), rollupSums{requests: r.Int64N(8)})
			}
			if tt.sorted {
				slices.Sort(m.ids)
			}
			if tt.big {
				m.sums[7].requests = 1 << keyRequestsBits
			}
			want := make([]int32, len(m.ids))
			for i := range want {
				want[i] = int32(i)
			}
			slices.SortFunc(want, func(a, b int32) int {
				return cmp.Or(cmp.Compare(m.sums[b].requests, m.sums[a].requests), strings.Compare(m.ids[a], m.ids[b]))
			})
			if got := m.byRequests(); !slices.Equal(got, want) {
				t.Errorf("byRequests() = %v, want %v", got, want)
			}
		})
	}
}
