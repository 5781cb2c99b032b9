package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Failed loads are counted per group (exported as
// modellab_cache_load_errors_total{endpoint}), cached or bypassed alike.
func TestGroupLoadErrors(t *testing.T) {
	c := newCache(t, Options{DisableRedis: true})
	fail := func(context.Context) ([]byte, error) { return nil, errors.New("database down") }
	ok := func(context.Context) ([]byte, error) { return []byte(`{}`), nil }
	ctx := context.Background()
	if _, _, err := c.Fetch(ctx, "a", FetchOptions{TTL: time.Minute, Group: "models"}, fail); err == nil {
		t.Fatal("a failing load returned no error")
	}
	if _, _, err := c.Fetch(ctx, "b", FetchOptions{TTL: 0, Group: "models"}, fail); err == nil {
		t.Fatal("a failing bypassed load returned no error")
	}
	if _, _, err := c.Fetch(ctx, "c", FetchOptions{TTL: time.Minute, Group: "servers"}, ok); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if got := st.Groups["models"].LoadErrors; got != 2 {
		t.Errorf("models load errors = %d, want 2", got)
	}
	if got := st.Groups["servers"].LoadErrors; got != 0 {
		t.Errorf("servers load errors = %d, want 0", got)
	}
	if st.LoadErrors != 2 {
		t.Errorf("total load errors = %d, want 2", st.LoadErrors)
	}
}
