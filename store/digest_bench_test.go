package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// BenchmarkDecodeDigests: a heavy user's week of digests (seven days of
// about 250 models, realistic sums) summed by model, as an analytics read
// does once its rows are in. As in the seed's heaviest user, a day lacks
// about a quarter of the models and a model has a few dozen events a day.
// Reports ns per model entry.
func BenchmarkDecodeDigests(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var blobs [][]byte
	entries := 0
	for range 7 {
		var ms []digestModel
		for i := range 260 {
			if r.IntN(4) == 0 {
				continue // a model without events that day
			}
			n := 1 + r.Int64N(25)
			ms = append(ms, digestModel{fmt.Sprintf("mdl_%020d", i*7919%100000), rollupSums{n, n / 40, n * 700, n * 250, n * 1_500_000, n * 1_100_000}})
		}
		slices.SortFunc(ms, func(a, b digestModel) int { return strings.Compare(a.model, b.model) })
		blobs = append(blobs, encodeModels(ms))
		entries += len(ms)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t := newModelTotals(0)
		for _, blob := range blobs {
			if _, err := t.mergeDigest(blob); err != nil {
				b.Fatal(err)
			}
		}
		t.reindex()
		t.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries), "ns/entry")
}
