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
		h := latencyCounts{}
		if err := addLatency(h, b); err == nil {
			again := latencyCounts{}
			if err := addLatency(again, encodeLatency(h)); err != nil || !reflect.DeepEqual(again, h) {
				t.Fatalf("histogram %v re-decodes to %v (%v)", h, again, err)
			}
		}
	})
}
