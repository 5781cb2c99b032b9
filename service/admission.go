package service

import (
	"container/list"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modellab/modellab"
)

// Caller is who a request's database-bound work is admitted as: the user
// once authenticated, else the client's address, so that an anonymous
// flood counts as one client per address. The transports put one in every
// request's context (WithCaller) before anything reaches the service;
// Authenticate records the user on it.
type Caller struct {
	addr string
	user atomic.Pointer[string] // the user's ID, set by Authenticate
}

// NewCaller returns the caller of a request from remoteAddr
// (http.Request.RemoteAddr: host and port; the port is dropped, a client
// has many).
func NewCaller(remoteAddr string) *Caller {
	c := &Caller{}
	c.Reset(remoteAddr)
	return c
}

// Reset makes c the anonymous caller of remoteAddr, so that a transport
// can embed a Caller in its per-request state rather than allocate one.
func (c *Caller) Reset(remoteAddr string) {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	c.addr = remoteAddr
	c.user.Store(nil)
}

// key is the tenant c's work is admitted as.
func (c *Caller) key() tenantKey {
	if c == nil {
		return tenantKey{}
	}
	if id := c.user.Load(); id != nil {
		return tenantKey{kind: tenantUser, id: *id}
	}
	return tenantKey{kind: tenantAddr, id: c.addr}
}

// CallerContextKey is the context key of a request's *Caller. WithCaller
// sets it; a transport that wraps every request's context in a type of
// its own may answer it there instead, and save an allocation per request.
var CallerContextKey = &contextKey{"caller"}

type contextKey struct{ name string }

func (k *contextKey) String() string { return "service context key " + k.name }

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, CallerContextKey, c)
}

func callerOf(ctx context.Context) *Caller {
	c, _ := ctx.Value(CallerContextKey).(*Caller)
	return c
}

// withoutCaller marks work done for everyone (the shared part of the model
// lists): it is admitted under the global bound only, so that one user's
// excess cannot fail the other users waiting on the same load.
func withoutCaller(ctx context.Context) context.Context {
	return context.WithValue(ctx, CallerContextKey, (*Caller)(nil))
}

// recordUser notes on ctx's caller that the request is u's.
func recordUser(ctx context.Context, u *modellab.User) {
	if c := callerOf(ctx); c != nil && u != nil {
		c.user.Store(&u.ID)
	}
}

type tenantKind uint8

const (
	tenantNone tenantKind = iota // no caller: internal work, the global bound only
	tenantUser
	tenantAddr
)

// tenantKey names a tenant without building a string per admission.
type tenantKey struct {
	kind tenantKind
	id   string
}

// tenant is one caller's share: the slots it holds and its work waiting,
// in arrival order.
type tenant struct {
	key     tenantKey
	held    int
	waiting list.List     // of *waiter
	turn    *list.Element // its place in admitter.turns, nil when not there
}

// waiter is one operation waiting for a slot; granted is closed when it
// gets one.
type waiter struct {
	t       *tenant
	granted chan struct{}
	elem    *list.Element
}

// admitter hands out the database slots: at most slots at once, at most
// perUser to one tenant, and, when work waits, in turns between tenants
// (round robin over per-tenant FIFO queues), so that a tenant with a
// hundred operations waiting does not starve one with a single operation.
//
// Invariant: when free > 0, no tenant in turns can take a slot (dispatch
// ran), so a newcomer taking a free slot at once jumps no queue.
type admitter struct {
	slots, perUser int
	// timer starts the wait bound of one queued operation: a channel that
	// fires when it runs out, and its stop. Tests inject their own.
	timer func() (<-chan time.Time, func() bool)

	mu      sync.Mutex
	free    int
	tenants map[tenantKey]*tenant
	turns   list.List // of *tenant: those with work waiting and room under perUser
}

// newAdmitter bounds the slots, and each tenant's share (perUser; 0 or
// more than slots: slots); queued work waits at most wait.
func newAdmitter(slots, perUser int, wait time.Duration) *admitter {
	if perUser <= 0 || perUser > slots {
		perUser = slots
	}
	timer := func() (<-chan time.Time, func() bool) {
		t := time.NewTimer(wait)
		return t.C, t.Stop
	}
	return &admitter{slots: slots, perUser: perUser, timer: timer, free: slots, tenants: make(map[tenantKey]*tenant)}
}

// capOf is the most slots tenant t may hold: work without a caller is
// bounded by the global slots only.
func (a *admitter) capOf(t *tenant) int {
	if t.key.kind == tenantNone {
		return a.slots
	}
	return a.perUser
}

// errShed is why an operation that waited for a slot was turned away.
type errShed struct {
	// perUser: the caller held its whole share (429), rather than the
	// database being busy for everyone (503).
	perUser bool
}

// acquire takes a slot for key's tenant. It returns waited when the
// operation had to queue. When the wait runs out first, the operation
// leaves the queue and acquire returns a shed error: rate_limited when the
// tenant already held its share, unavailable when every slot was taken by
// the tenants together. ctx ending returns unavailable.
func (a *admitter) acquire(ctx context.Context, key tenantKey) (t *tenant, waited bool, err error) {
	a.mu.Lock()
	t = a.tenantLocked(key)
	if a.free > 0 && t.held < a.capOf(t) && t.waiting.Len() == 0 {
		a.free--
		t.held++
		a.mu.Unlock()
		return t, false, nil
	}
	w := &waiter{t: t, granted: make(chan struct{})}
	w.elem = t.waiting.PushBack(w)
	if t.turn == nil && t.held < a.capOf(t) {
		t.turn = a.turns.PushBack(t)
	}
	a.mu.Unlock()
	expired, stop := a.timer()
	defer stop()
	return a.wait(ctx, w, expired)
}

// wait blocks until w is granted, expired fires or ctx ends.
func (a *admitter) wait(ctx context.Context, w *waiter, expired <-chan time.Time) (*tenant, bool, error) {
	var shed *errShed
	select {
	case <-w.granted:
		return w.t, true, nil
	case <-expired:
		shed = &errShed{}
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.granted:
		// Granted while we were giving up: the slot is ours, use it.
		return w.t, true, nil
	default:
	}
	t := w.t
	t.waiting.Remove(w.elem)
	if shed != nil {
		// The caller's share is what bound it only when the share is
		// less than the whole: a caller allowed every slot that holds
		// them all has met the global bound (503), as before shares.
		shed.perUser = t.held >= a.capOf(t) && a.capOf(t) < a.slots
	}
	if t.waiting.Len() == 0 && t.turn != nil {
		a.turns.Remove(t.turn)
		t.turn = nil
	}
	a.forgetLocked(t)
	if shed == nil {
		return nil, true, modellab.WrapError(modellab.EUNAVAILABLE, ctx.Err(), "the request was cancelled")
	}
	return nil, true, shed
}

func (e *errShed) Error() string {
	if e.perUser {
		return "rate limited: this caller's share of the database is in use"
	}
	return "overloaded: every database slot is in use"
}

// release gives t's slot back and hands free slots out in turn.
func (a *admitter) release(t *tenant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free++
	t.held--
	if t.turn == nil && t.waiting.Len() > 0 && t.held < a.capOf(t) {
		t.turn = a.turns.PushBack(t)
	}
	a.dispatchLocked()
	a.forgetLocked(t)
}

// dispatchLocked grants free slots to the tenants in turns, one operation
// per tenant per turn; a tenant with more waiting and room under its cap
// goes to the back of the line.
func (a *admitter) dispatchLocked() {
	for a.free > 0 && a.turns.Len() > 0 {
		t := a.turns.Remove(a.turns.Front()).(*tenant)
		t.turn = nil
		w := t.waiting.Remove(t.waiting.Front()).(*waiter)
		a.free--
		t.held++
		close(w.granted)
		if t.waiting.Len() > 0 && t.held < a.capOf(t) {
			t.turn = a.turns.PushBack(t)
		}
	}
}

func (a *admitter) tenantLocked(key tenantKey) *tenant {
	t := a.tenants[key]
	if t == nil {
		t = &tenant{key: key}
		a.tenants[key] = t
	}
	return t
}

// forgetLocked drops a tenant that holds and waits for nothing, so that
// the map does not grow with every address ever seen.
func (a *admitter) forgetLocked(t *tenant) {
	if t.held == 0 && t.waiting.Len() == 0 {
		delete(a.tenants, t.key)
	}
}

// stats reports the free slots and the tenants known, for the tests.
func (a *admitter) stats() (free, tenants int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free, len(a.tenants)
}
