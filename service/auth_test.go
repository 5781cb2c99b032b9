package service

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

// slowTokens is a Store whose token lookup waits for release and honours
// its context, as the database driver does. Only TokenByHash is used.
type slowTokens struct {
	Store
	release chan struct{}
	calls   atomic.Int32
}

func (s *slowTokens) TokenByHash(ctx context.Context, hash string) (modellab.User, modellab.Token, error) {
	s.calls.Add(1)
	select {
	case <-s.release:
		return modellab.User{ID: "usr_alice", Name: "alice"}, modellab.Token{ID: "tok_alice", UserID: "usr_alice"}, nil
	case <-ctx.Done():
		return modellab.User{}, modellab.Token{}, modellab.WrapError(modellab.EUNAVAILABLE, ctx.Err(), "database unreachable")
	}
}

func (s *slowTokens) TouchTokens(context.Context, []modellab.TokenUse) error { return nil }

// TestTokenLookupOutlivesFirstCaller: concurrent requests with one token
// share one lookup; when the first of them leaves, the others still get
// their user (they used to get 503: the lookup ran with the first caller's
// context).
func TestTokenLookupOutlivesFirstCaller(t *testing.T) {
	st := &slowTokens{release: make(chan struct{})}
	svc := New(Config{Store: st})
	t.Cleanup(svc.Close)

	firstCtx, leave := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := svc.Authenticate(firstCtx, "mlk_shared")
		firstErr <- err
	}()
	waitCalls(t, st, 1)

	second := make(chan error, 1)
	var got *modellab.User
	go func() {
		u, err := svc.Authenticate(context.Background(), "mlk_shared")
		got = u
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the second caller join the flight
	leave()
	if err := <-firstErr; modellab.ErrorCode(err) != modellab.EUNAVAILABLE || !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: err %v, want its own cancellation", err)
	}
	close(st.release)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v, want the user", err)
	}
	if got == nil || got.ID != "usr_alice" {
		t.Fatalf("second caller got %+v", got)
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("%d lookups, want 1 shared", n)
	}
}

func waitCalls(t *testing.T, st *slowTokens, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for st.calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("lookup not started")
		}
		time.Sleep(time.Millisecond)
	}
}
