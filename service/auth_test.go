package service

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/internal/testredis"
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

// countingTokens answers every token lookup with alice, under the name it
// holds, and counts the lookups.
type countingTokens struct {
	Store
	name  atomic.Pointer[string]
	calls atomic.Int32
}

func (s *countingTokens) TokenByHash(context.Context, string) (modellab.User, modellab.Token, error) {
	s.calls.Add(1)
	return modellab.User{ID: "usr_alice", Name: *s.name.Load()}, modellab.Token{ID: "tok_alice", UserID: "usr_alice"}, nil
}

func (s *countingTokens) TouchTokens(context.Context, []modellab.TokenUse) error { return nil }

// redisCache is a cache on o's Redis, once it uses it.
func redisCache(t *testing.T, o cache.Options) *cache.Cache {
	t.Helper()
	c, err := cache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for deadline := time.Now().Add(5 * time.Second); c.Mode() != "redis"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cache mode %q, want redis", c.Mode())
		}
	}
	return c
}

// TestSharedLookupDecodedOnce: without the local tier every request reads
// its token's lookup from Redis; while the lookup's bytes are the same,
// the user decoded the first time is reused, and a lookup that changed
// (here: dropped and loaded anew under another name) is decoded again.
func TestSharedLookupDecodedOnce(t *testing.T) {
	c := redisCache(t, cache.Options{RedisURL: testredis.Start(t).URL(), Prefix: "authtest:", DisableLocal: true})
	st := &countingTokens{}
	name := "alice"
	st.name.Store(&name)
	svc := New(Config{Store: st, Cache: c})
	t.Cleanup(svc.Close)
	ctx := context.Background()

	first, err := svc.Authenticate(ctx, "mlk_decode_once")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		u, err := svc.Authenticate(ctx, "mlk_decode_once")
		if err != nil || u != first {
			t.Fatalf("repeat: %p %+v, %v; want the first user (%p) again", u, u, err, first)
		}
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("%d database lookups, want 1", n)
	}

	renamed := "alice-renamed"
	st.name.Store(&renamed)
	c.Invalidate(ctx, keyToken(modellab.HashToken("mlk_decode_once")))
	u, err := svc.Authenticate(ctx, "mlk_decode_once")
	if err != nil || u == first || u.Name != renamed {
		t.Fatalf("after the lookup changed: %+v, %v; want a new user named %q", u, err, renamed)
	}
}
