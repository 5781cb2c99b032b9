package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// admitHarness drives an admitter step by step: every queued operation's
// wait bound is a channel the test fires, and the timer's creation tells
// the test that the operation is in its queue, so nothing depends on
// timing.
type admitHarness struct {
	t       *testing.T
	a       *admitter
	timers  chan chan time.Time
	ops     map[string]*admitOp
	cancels map[string]context.CancelFunc
}

type admitOp struct {
	who     string
	expired chan time.Time
	done    chan admitResult
	t       *tenant // once granted
}

type admitResult struct {
	t   *tenant
	err error
}

func newAdmitHarness(t *testing.T, slots, perUser int) *admitHarness {
	h := &admitHarness{t: t, a: newAdmitter(slots, perUser, time.Hour), timers: make(chan chan time.Time, 1),
		ops: map[string]*admitOp{}, cancels: map[string]context.CancelFunc{}}
	h.a.timer = func() (<-chan time.Time, func() bool) {
		c := make(chan time.Time, 1)
		h.timers <- c
		return c, func() bool { return true }
	}
	return h
}

func userKey(who string) tenantKey { return tenantKey{kind: tenantUser, id: who} }

// take acquires a slot that must be free now.
func (h *admitHarness) take(id, who string) {
	h.t.Helper()
	tn, waited, err := h.a.acquire(context.Background(), userKey(who))
	if err != nil || waited {
		h.t.Fatalf("take %s for %s: waited %v, err %v; want a free slot at once", id, who, waited, err)
	}
	h.ops[id] = &admitOp{who: who, t: tn}
}

// queue starts an acquire that must wait, and returns once it is queued.
func (h *admitHarness) queue(id, who string) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancels[id] = cancel
	op := &admitOp{who: who, done: make(chan admitResult, 1)}
	h.ops[id] = op
	go func() {
		tn, waited, err := h.a.acquire(ctx, userKey(who))
		if !waited {
			err = fmt.Errorf("got a slot without waiting (err %v)", err)
		}
		op.done <- admitResult{tn, err}
	}()
	select {
	case op.expired = <-h.timers:
	case r := <-op.done:
		h.t.Fatalf("queue %s for %s: did not wait: %v", id, who, r.err)
	case <-time.After(5 * time.Second):
		h.t.Fatalf("queue %s for %s: never queued", id, who)
	}
}

// result waits for id's acquire to return.
func (h *admitHarness) result(id string) admitResult {
	h.t.Helper()
	op := h.ops[id]
	select {
	case r := <-op.done:
		op.t = r.t
		op.done = nil
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatalf("%s: acquire did not return", id)
		return admitResult{}
	}
}

// state renders held/waiting per tenant, sorted: "A=2/1 B=1/0".
func (h *admitHarness) state() string {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	var parts []string
	for k, tn := range h.a.tenants {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", k.id, tn.held, tn.waiting.Len()))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

type admitStep struct {
	do    string // take, queue, release, expire, cancel
	id    string // the operation
	who   string // its tenant (take, queue)
	want  string // release: the operation granted ("" none); expire, cancel: the error code
	state string // held/waiting per tenant after the step ("none": no tenant left); "" not checked
}

func TestAdmitter(t *testing.T) {
	cases := []struct {
		name           string
		slots, perUser int
		steps          []admitStep
	}{
		{"per-user cap leaves slots to others", 4, 2, []admitStep{
			{do: "take", id: "a1", who: "A", state: "A=1/0"},
			{do: "take", id: "a2", who: "A", state: "A=2/0"},
			{do: "queue", id: "a3", who: "A", state: "A=2/1"}, // two slots free, but A holds its share
			{do: "take", id: "b1", who: "B", state: "A=2/1 B=1/0"},
			{do: "take", id: "b2", who: "B", state: "A=2/1 B=2/0"},
			{do: "release", id: "a1", want: "a3", state: "A=2/0 B=2/0"},
			{do: "release", id: "a2", state: "A=1/0 B=2/0"},
			{do: "release", id: "a3", state: "B=2/0"},
		}},
		{"round robin: a user with many waiting does not starve one with one", 2, 2, []admitStep{
			{do: "take", id: "a1", who: "A"},
			{do: "take", id: "a2", who: "A"},
			{do: "queue", id: "a3", who: "A"},
			{do: "queue", id: "a4", who: "A"},
			{do: "queue", id: "a5", who: "A"},
			{do: "queue", id: "b1", who: "B", state: "A=2/3 B=0/1"},
			// A queued first, but B's turn comes before A's next.
			{do: "release", id: "a1", want: "b1", state: "A=1/3 B=1/0"},
			{do: "release", id: "b1", want: "a3", state: "A=2/2"},
			{do: "release", id: "a2", want: "a4", state: "A=2/1"},
		}},
		{"turns rotate between three users, FIFO within each", 3, 3, []admitStep{
			{do: "take", id: "z1", who: "Z"},
			{do: "take", id: "z2", who: "Z"},
			{do: "take", id: "z3", who: "Z"},
			{do: "queue", id: "a1", who: "A"},
			{do: "queue", id: "a2", who: "A"},
			{do: "queue", id: "a3", who: "A"},
			{do: "queue", id: "b1", who: "B"},
			{do: "queue", id: "b2", who: "B"},
			{do: "queue", id: "c1", who: "C", state: "A=0/3 B=0/2 C=0/1 Z=3/0"},
			{do: "release", id: "z1", want: "a1"},
			{do: "release", id: "z2", want: "b1"},
			{do: "release", id: "z3", want: "c1", state: "A=1/2 B=1/1 C=1/0"},
			{do: "release", id: "c1", want: "a2"},
			{do: "release", id: "a1", want: "b2"},
			{do: "release", id: "b1", want: "a3", state: "A=2/0 B=1/0"},
		}},
		{"a user's excess past the wait is rate limited", 4, 1, []admitStep{
			{do: "take", id: "a1", who: "A"},
			{do: "queue", id: "a2", who: "A"},
			{do: "expire", id: "a2", want: modellab.ERATELIMITED, state: "A=1/0"},
			{do: "take", id: "b1", who: "B", state: "A=1/0 B=1/0"},
		}},
		{"every slot taken by several users is overload, not rate limiting", 2, 1, []admitStep{
			{do: "take", id: "a1", who: "A"},
			{do: "take", id: "b1", who: "B"},
			{do: "queue", id: "c1", who: "C", state: "A=1/0 B=1/0 C=0/1"},
			{do: "expire", id: "c1", want: modellab.EUNAVAILABLE, state: "A=1/0 B=1/0"},
			{do: "queue", id: "c2", who: "C"},
			{do: "cancel", id: "c2", want: modellab.EUNAVAILABLE, state: "A=1/0 B=1/0"},
			{do: "release", id: "a1", state: "B=1/0"},
		}},
		{"a share of every slot: its excess is overload", 2, 2, []admitStep{
			{do: "take", id: "a1", who: "A"},
			{do: "take", id: "a2", who: "A"},
			{do: "queue", id: "a3", who: "A"},
			{do: "expire", id: "a3", want: modellab.EUNAVAILABLE, state: "A=2/0"},
		}},
		{"a shed waiter leaves its user's turn to the next", 1, 1, []admitStep{
			{do: "take", id: "z1", who: "Z"},
			{do: "queue", id: "a1", who: "A"},
			{do: "queue", id: "b1", who: "B"},
			{do: "expire", id: "a1", want: modellab.EUNAVAILABLE, state: "B=0/1 Z=1/0"},
			{do: "release", id: "z1", want: "b1", state: "B=1/0"},
			{do: "release", id: "b1", state: "none"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newAdmitHarness(t, tc.slots, tc.perUser)
			for i, st := range tc.steps {
				switch st.do {
				case "take":
					h.take(st.id, st.who)
				case "queue":
					h.queue(st.id, st.who)
				case "release":
					h.a.release(h.ops[st.id].t)
					if st.want != "" {
						if r := h.result(st.want); r.err != nil {
							t.Fatalf("step %d (release %s): %s wants a slot, got %v", i, st.id, st.want, r.err)
						}
					}
				case "expire", "cancel":
					if st.do == "expire" {
						h.ops[st.id].expired <- time.Now()
					} else {
						h.cancels[st.id]()
					}
					r := h.result(st.id)
					if got := shedCode(r.err); got != st.want {
						t.Fatalf("step %d (%s %s): got %q (%v), want %q", i, st.do, st.id, got, r.err, st.want)
					}
				}
				if want := st.state; want != "" {
					if want == "none" {
						want = ""
					}
					if got := h.state(); got != want {
						t.Fatalf("step %d (%s %s): state %q, want %q", i, st.do, st.id, got, want)
					}
				}
			}
			for id, op := range h.ops {
				if op.done != nil {
					select {
					case r := <-op.done:
						t.Errorf("%s returned unasked: %v", id, r.err)
					default:
					}
				}
			}
			for _, c := range h.cancels {
				c()
			}
		})
	}
}

// shedCode is the code withDB gives an acquire error.
func shedCode(err error) string {
	var shed *errShed
	switch {
	case err == nil:
		return ""
	case errors.As(err, &shed) && shed.perUser:
		return modellab.ERATELIMITED
	case errors.As(err, &shed):
		return modellab.EUNAVAILABLE
	}
	return modellab.ErrorCode(err)
}

func TestCallerKey(t *testing.T) {
	alice := &modellab.User{ID: "usr_alice"}
	cases := []struct {
		name   string
		remote string
		user   *modellab.User
		want   tenantKey
	}{
		{"anonymous IPv4: the host, not the port", "192.0.2.7:51234", nil, tenantKey{tenantAddr, "192.0.2.7"}},
		{"anonymous IPv6", "[2001:db8::1]:443", nil, tenantKey{tenantAddr, "2001:db8::1"}},
		{"no port", "192.0.2.7", nil, tenantKey{tenantAddr, "192.0.2.7"}},
		{"authenticated: the user, wherever from", "192.0.2.7:51234", alice, tenantKey{tenantUser, "usr_alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCaller(tc.remote)
			ctx := WithCaller(context.Background(), c)
			recordUser(ctx, tc.user)
			if got := callerOf(ctx).key(); got != tc.want {
				t.Errorf("key: got %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := callerOf(context.Background()).key(); got != (tenantKey{}) {
		t.Errorf("no caller: got %+v, want the global bound's tenant", got)
	}
	if got := callerOf(withoutCaller(WithCaller(context.Background(), NewCaller("192.0.2.7:1")))).key(); got != (tenantKey{}) {
		t.Errorf("withoutCaller: got %+v, want the global bound's tenant", got)
	}
	// Two connections of one address are one client; two addresses two.
	a, b, c := NewCaller("192.0.2.7:1").key(), NewCaller("192.0.2.7:2").key(), NewCaller("192.0.2.8:1").key()
	if a != b || a == c {
		t.Errorf("per address: %+v %+v %+v", a, b, c)
	}
}

// shedRecorder counts the OnShed and OnSlotWait hooks.
type shedRecorder struct {
	mu    sync.Mutex
	shed  map[string]int
	waits int
}

func (r *shedRecorder) onShed(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shed[reason]++
}

func (r *shedRecorder) onWait() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits++
}

func newAdmissionService(t *testing.T, maxDB, perUser int) (*Service, *shedRecorder) {
	t.Helper()
	c, err := cache.New(cache.Options{DisableRedis: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	rec := &shedRecorder{shed: map[string]int{}}
	s := New(Config{Cache: c, MaxDBInFlight: maxDB, MaxDBInFlightPerUser: perUser,
		DBQueueWait: 20 * time.Millisecond, OnShed: rec.onShed, OnSlotWait: rec.onWait})
	t.Cleanup(s.Close)
	return s, rec
}

// hold takes n slots as ctx's caller and returns their release.
func hold(t *testing.T, s *Service, ctx context.Context, n int) func() {
	t.Helper()
	var held []*tenant
	for range n {
		tn, waited, err := s.slots.acquire(ctx, callerOf(ctx).key())
		if err != nil || waited {
			t.Fatalf("hold: waited %v, err %v", waited, err)
		}
		held = append(held, tn)
	}
	return func() {
		for _, tn := range held {
			s.slots.release(tn)
		}
	}
}

func userCtx(id, remote string) context.Context {
	ctx := WithCaller(context.Background(), NewCaller(remote))
	recordUser(ctx, &modellab.User{ID: id})
	return ctx
}

// TestWithDBSheds checks the errors and hooks of withDB: a caller past its
// share gets rate_limited (429) and "user"; everyone together past the
// bound gets unavailable (503) and "db"; the other users are served.
func TestWithDBSheds(t *testing.T) {
	noop := func(context.Context) error { return nil }
	t.Run("one user's excess", func(t *testing.T) {
		s, rec := newAdmissionService(t, 8, 2)
		alice := userCtx("usr_alice", "192.0.2.1:1")
		defer hold(t, s, alice, 2)()
		err := s.withDB(alice, noop)
		if got := modellab.ErrorCode(err); got != modellab.ERATELIMITED {
			t.Fatalf("alice past her share: got %v, want %s", err, modellab.ERATELIMITED)
		}
		if err := s.withDB(userCtx("usr_bob", "192.0.2.1:2"), noop); err != nil {
			t.Fatalf("bob from the same address: %v", err)
		}
		// An anonymous client at alice's address is not alice.
		if err := s.withDB(WithCaller(context.Background(), NewCaller("192.0.2.1:3")), noop); err != nil {
			t.Fatalf("anonymous: %v", err)
		}
		if rec.shed["user"] != 1 || rec.shed["db"] != 0 || rec.waits != 1 {
			t.Errorf("hooks: shed %v waits %d; want user 1, db 0, waits 1", rec.shed, rec.waits)
		}
	})
	t.Run("anonymous clients, one per address", func(t *testing.T) {
		s, _ := newAdmissionService(t, 8, 1)
		a1 := WithCaller(context.Background(), NewCaller("198.51.100.1:1000"))
		defer hold(t, s, a1, 1)()
		a2 := WithCaller(context.Background(), NewCaller("198.51.100.1:2000"))
		if got := modellab.ErrorCode(s.withDB(a2, noop)); got != modellab.ERATELIMITED {
			t.Fatalf("same address, other connection: got %q, want %s", got, modellab.ERATELIMITED)
		}
		if err := s.withDB(WithCaller(context.Background(), NewCaller("198.51.100.2:1000")), noop); err != nil {
			t.Fatalf("other address: %v", err)
		}
	})
	t.Run("every slot taken", func(t *testing.T) {
		s, rec := newAdmissionService(t, 2, 1)
		defer hold(t, s, userCtx("usr_a", "192.0.2.1:1"), 1)()
		defer hold(t, s, userCtx("usr_b", "192.0.2.2:1"), 1)()
		err := s.withDB(userCtx("usr_c", "192.0.2.3:1"), noop)
		if got := modellab.ErrorCode(err); got != modellab.EUNAVAILABLE {
			t.Fatalf("global overload: got %v, want %s", err, modellab.EUNAVAILABLE)
		}
		if rec.shed["db"] != 1 || rec.shed["user"] != 0 {
			t.Errorf("hooks: shed %v; want db 1", rec.shed)
		}
	})
}

// TestCacheHitsAreNotAdmitted fills an entry, then takes every slot (the
// caller's share and another user's): the hit is still served at once, a
// miss is shed.
func TestCacheHitsAreNotAdmitted(t *testing.T) {
	s, rec := newAdmissionService(t, 2, 1)
	alice := userCtx("usr_alice", "192.0.2.1:1")
	spec := readSpec{key: "test:admission:hit", group: GroupAnalytics, ttl: time.Minute}
	load := func(ctx context.Context, s *Service, v string) (string, error) { return v, nil }
	if _, res, err := cachedRead(alice, s, spec, "x", load); err != nil || res != cache.Miss {
		t.Fatalf("fill: %v %v", res, err)
	}
	defer hold(t, s, alice, 1)()
	defer hold(t, s, userCtx("usr_bob", "192.0.2.2:1"), 1)()
	for range 3 {
		e, res, err := cachedRead(alice, s, spec, "x", load)
		if err != nil || res != cache.Hit || string(e.Body()) != `"x"` {
			t.Fatalf("hit with every slot taken: %v %v", res, err)
		}
	}
	miss := readSpec{key: "test:admission:miss", group: GroupAnalytics, ttl: time.Minute}
	if _, _, err := cachedRead(alice, s, miss, "y", load); modellab.ErrorCode(err) != modellab.ERATELIMITED {
		t.Fatalf("miss with every slot taken: got %v, want %s", err, modellab.ERATELIMITED)
	}
	if rec.waits != 1 {
		t.Errorf("slot waits: got %d, want 1 (the miss only)", rec.waits)
	}
}
