package store

import (
	"reflect"
	"testing"
)

// FuzzDigestBlobs feeds arbitrary bytes (what a corrupted row could hold)
// to the digests' decoders: they never panic, and what they accept
// survives encode → decode unchanged.
func FuzzDigestBlobs(f *testing.F) {
	f.Add(encodeModels([]digestModel{{"mdl_a", rollupSums{3, 1, 4, 1, 5, 9}}, {"mdl_b", rollupSums{2, 6, 5, 3, 5, 8}}}))
	f.Add(encodeLatency(latencyCounts{zeroBucket: 2, 5: 1, 1271: 3}))
	f.Add([]byte{})
	f.Add([]byte{digestFormat, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if models, err := decodeModels(b); err == nil {
			again, err := decodeModels(encodeModels(models))
			if err != nil || len(again) != len(models) || len(models) > 0 && !reflect.DeepEqual(again, models) {
				t.Fatalf("models %+v re-decode to %+v (%v)", models, again, err)
			}
		}
		checkMerge(t, b)
		h := latencyCounts{}
		if err := addLatency(h, b); err == nil {
			again := latencyCounts{}
			if err := addLatency(again, encodeLatency(h)); err != nil || !reflect.DeepEqual(again, h) {
				t.Fatalf("histogram %v re-decodes to %v (%v)", h, again, err)
			}
		}
	})
}

// checkMerge: mergeDigest accepts what decodeModels accepts when its ids
// are strictly in order, refuses the rest, and sums as decodeModels reads
// (a blob merged twice is each model twice).
func checkMerge(t *testing.T, b []byte) {
	t.Helper()
	models, err := decodeModels(b)
	ordered := err == nil
	for i := 1; ordered && i < len(models); i++ {
		ordered = models[i-1].model < models[i].model
	}
	m := newModelTotals(0)
	defer m.release()
	_, mergeErr := m.mergeDigest(b)
	if mergeErr == nil {
		_, mergeErr = m.mergeDigest(b)
	}
	if (mergeErr == nil) != ordered {
		t.Fatalf("mergeDigest: %v; decodeModels: %v, in order %v", mergeErr, err, ordered)
	}
	if !ordered {
		return
	}
	if len(m.ids) != len(models) {
		t.Fatalf("merged %d models, want %d", len(m.ids), len(models))
	}
	for i, dm := range models {
		want := dm.sums
		want.add(dm.sums)
		if m.ids[i] != dm.model || m.sums[i] != want {
			t.Fatalf("model %d: %q %+v, want %q %+v", i, m.ids[i], m.sums[i], dm.model, want)
		}
	}
}
