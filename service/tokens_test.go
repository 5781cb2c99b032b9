package service

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// memTokens is a Store of tokens alone, in memory, that counts lookups and
// can play a database that is down.
type memTokens struct {
	Store
	mu      sync.Mutex
	byHash  map[string]modellab.Token
	uses    []modellab.TokenUse
	lookups atomic.Int32
	down    atomic.Bool
}

func newMemTokens() *memTokens { return &memTokens{byHash: map[string]modellab.Token{}} }

func (m *memTokens) add(secret string, t modellab.Token) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byHash[modellab.HashToken(secret)] = t
}

func (m *memTokens) TokenByHash(_ context.Context, hash string) (modellab.User, modellab.Token, error) {
	m.lookups.Add(1)
	if m.down.Load() {
		return modellab.User{}, modellab.Token{}, modellab.Errorf(modellab.EUNAVAILABLE, "down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byHash[hash]
	if !ok {
		return modellab.User{}, modellab.Token{}, modellab.Errorf(modellab.ENOTFOUND, "no token")
	}
	return modellab.User{ID: t.UserID, Name: "alice"}, t, nil
}

func (m *memTokens) GetToken(_ context.Context, id string) (modellab.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.byHash {
		if t.ID == id {
			return t, nil
		}
	}
	return modellab.Token{}, modellab.Errorf(modellab.ENOTFOUND, "no token")
}

func (m *memTokens) DeleteToken(_ context.Context, id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, t := range m.byHash {
		if t.ID == id {
			delete(m.byHash, h)
			return h, nil
		}
	}
	return "", modellab.Errorf(modellab.ENOTFOUND, "no token")
}

func (m *memTokens) TouchTokens(_ context.Context, uses []modellab.TokenUse) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uses = append(m.uses, uses...)
	return nil
}

func TestTokenLookupsCachedAndRevoked(t *testing.T) {
	modes := map[string]func(t *testing.T) *cache.Cache{
		"memory": func(t *testing.T) *cache.Cache { return mustCache(t, cache.Options{DisableRedis: true}) },
		"off":    func(t *testing.T) *cache.Cache { return mustCache(t, cache.Options{Disabled: true}) },
		"none":   func(*testing.T) *cache.Cache { return nil },
	}
	for name, mk := range modes {
		t.Run(name, func(t *testing.T) {
			st := newMemTokens()
			svc := New(Config{Store: st, Cache: mk(t)})
			t.Cleanup(svc.Close)
			ctx := context.Background()
			alice := &modellab.User{ID: "usr_alice"}
			st.add("mlk_a", modellab.Token{ID: "tok_a", UserID: alice.ID})
			st.add("mlk_b", modellab.Token{ID: "tok_b", UserID: "usr_bob"})
			for i := 0; i < 100; i++ {
				if u, err := svc.Authenticate(ctx, "mlk_a"); err != nil || u.ID != alice.ID {
					t.Fatalf("Authenticate = %v, %v", u, err)
				}
			}
			if n := st.lookups.Load(); n != 1 {
				t.Errorf("%d lookups for 100 requests, want 1", n)
			}
			if _, err := svc.Authenticate(ctx, "mlk_b"); err != nil {
				t.Fatal(err)
			}
			if err := svc.RevokeToken(ctx, alice, "tok_b"); modellab.ErrorCode(err) != modellab.ENOTFOUND {
				t.Errorf("revoking another user's token: %v, want not_found", err)
			}
			if err := svc.RevokeToken(ctx, alice, "tok_a"); err != nil {
				t.Fatalf("RevokeToken: %v", err)
			}
			if _, err := svc.Authenticate(ctx, "mlk_a"); modellab.ErrorCode(err) != modellab.EUNAUTHORIZED {
				t.Errorf("a revoked token: err %v, want unauthorized at once", err)
			}
			// The database down: a cached token still works, an unknown one
			// is 503, never 401.
			st.down.Store(true)
			if _, err := svc.Authenticate(ctx, "mlk_b"); err != nil {
				t.Errorf("a cached token with the database down: %v", err)
			}
			if _, err := svc.Authenticate(ctx, "mlk_new"); modellab.ErrorCode(err) != modellab.EUNAVAILABLE {
				t.Errorf("an unchecked token with the database down: %v, want unavailable", err)
			}
		})
	}
}

func mustCache(t *testing.T, o cache.Options) *cache.Cache {
	t.Helper()
	c, err := cache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestTokenUseMarkedOncePerMinute: a token used all the time is recorded
// once a minute, by the batch, not by the requests.
func TestTokenUseMarkedOncePerMinute(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	st := newMemTokens()
	c := mustCache(t, cache.Options{DisableRedis: true, Now: now})
	svc := New(Config{Store: st, Cache: c, Now: now})
	t.Cleanup(svc.Close)
	st.add("mlk_a", modellab.Token{ID: "tok_a", UserID: "usr_alice"})
	use := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := svc.Authenticate(context.Background(), "mlk_a"); err != nil {
				t.Fatal(err)
			}
		}
	}
	use(50)
	svc.auth.uses.flush(context.Background())
	skew.Store(int64(30 * time.Second))
	use(50)
	svc.auth.uses.flush(context.Background())
	skew.Store(int64(61 * time.Second))
	use(50)
	svc.auth.uses.flush(context.Background())
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.uses) != 2 || st.uses[0].ID != "tok_a" || st.uses[1].At.Sub(st.uses[0].At) < time.Minute {
		t.Errorf("uses recorded = %+v, want two a minute apart", st.uses)
	}
}

func TestCreateTokenInput(t *testing.T) {
	svc := New(Config{Store: newMemTokens()})
	t.Cleanup(svc.Close)
	alice := &modellab.User{ID: "usr_alice"}
	for _, c := range []struct {
		spec  TokenSpec
		field string
	}{
		{TokenSpec{Name: ""}, "name"},
		{TokenSpec{Name: string(make([]byte, modellab.MaxTokenNameLen+1))}, "name"},
		{TokenSpec{Name: "x", ExpiresIn: -time.Second}, "expires_in_hours"},
		{TokenSpec{Name: "x", ExpiresIn: modellab.MaxTokenLifetime + 1}, "expires_in_hours"},
	} {
		_, _, err := svc.CreateToken(context.Background(), alice, c.spec)
		if modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) != c.field {
			t.Errorf("CreateToken(%+v): %v, want invalid_argument on %s", c.spec, err, c.field)
		}
	}
	if _, _, err := svc.CreateToken(context.Background(), nil, TokenSpec{Name: "x"}); modellab.ErrorCode(err) != modellab.EUNAUTHORIZED {
		t.Errorf("anonymous CreateToken: %v", err)
	}
}

// BenchmarkAuthenticateHit: a cached token, with the shared cache's Peek
// (memory) and without it (caching off: the front map alone).
func BenchmarkAuthenticateHit(b *testing.B) {
	for _, mode := range []struct {
		name string
		o    cache.Options
	}{{"cache", cache.Options{DisableRedis: true}}, {"front-only", cache.Options{Disabled: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			c, err := cache.New(mode.o)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			st := newMemTokens()
			st.add("mlk_a", modellab.Token{ID: "tok_a", UserID: "usr_alice"})
			svc := New(Config{Store: st, Cache: c})
			defer svc.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Authenticate(ctx, "mlk_a"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
