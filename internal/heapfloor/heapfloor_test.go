package heapfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name        string
		live, floor uint64
		base, want  int
	}{
		{"live heap far under the floor", 11 * mb, 64 * mb, 100, 482},
		{"goal exactly the floor", 32 * mb, 64 * mb, 100, 101},
		{"live heap needs more than the floor", 40 * mb, 64 * mb, 100, 100},
		{"live heap above the floor", 300 * mb, 64 * mb, 100, 100},
		{"a higher base wins", 11 * mb, 64 * mb, 800, 800},
		{"nearly empty heap: bounded", 1 << 10, 64 * mb, 100, maxPercent},
		{"nothing measured yet", 0, 64 * mb, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.floor, tc.base); got != tc.want {
				t.Errorf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
			}
			if p := Percent(tc.live, tc.floor, tc.base); tc.live > 0 && p < maxPercent && tc.live+tc.live*uint64(p)/100 < tc.floor {
				t.Errorf("goal %d under the floor %d", tc.live+tc.live*uint64(p)/100, tc.floor)
			}
		})
	}
}

func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestFloorFollowsCycles: after a cycle the heap goal is the floor (a
// small test heap would otherwise get a goal of a few MB); Stop sets GOGC
// back to its base.
func TestFloorFollowsCycles(t *testing.T) {
	const floor = 32 << 20
	f := Start(floor, 100)
	if second := Start(1<<40, 100); second.adjust() {
		t.Errorf("a second Floor adjusts GOGC while the first runs")
	}
	stopped := false
	defer func() {
		if !stopped {
			f.Stop()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for read("/gc/heap/goal:bytes") < floor*9/10 {
		if time.Now().After(deadline) {
			t.Fatalf("heap goal %d after cycles (GOGC %d), want about the floor %d",
				read("/gc/heap/goal:bytes"), read("/gc/gogc:percent"), floor)
		}
		runtime.GC() // a cycle: the cleanup adjusts GOGC after it
		time.Sleep(10 * time.Millisecond)
	}
	if p := read("/gc/gogc:percent"); p <= 100 {
		t.Errorf("GOGC %d with a heap far under the floor, want above 100", p)
	}
	// A live heap above the floor needs no help: later cycles set the
	// base back.
	live := make([][]byte, 48)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	for read("/gc/gogc:percent") != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d with %d MB live over a %d MB floor, want 100", read("/gc/gogc:percent"), len(live), floor>>20)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
	f.Stop()
	stopped = true
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d after Stop, want the base 100", p)
	}
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if p := read("/gc/gogc:percent"); p != 100 {
		t.Errorf("GOGC %d after a cycle past Stop, want 100 still", p)
	}
}
