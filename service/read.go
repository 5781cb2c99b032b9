package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// readSpec names one cached read: its key, its group (the endpoint label
// of the metrics), its TTL and the tags its value depends on.
type readSpec struct {
	key   string
	group string
	ttl   time.Duration
	tags  []string
	// shared marks a value loaded for everyone (the global model part): its
	// load is admitted under the global bound only, not the caller's share.
	shared bool
}

// loader computes the value of a cached read from the database. It is a
// plain function of its argument, not a closure, so that a hit builds
// nothing: see cachedRead.
type loader[A, T any] func(ctx context.Context, s *Service, arg A) (T, error)

// cachedRead answers spec from the cache. On a miss it runs load once per
// key (however many callers miss together) with a database slot held, and
// stores the encoded value. The hit path is a Peek: no closure, no
// allocation.
func cachedRead[A, T any](ctx context.Context, s *Service, spec readSpec, arg A, load loader[A, T]) (*cache.Entry, cache.Result, error) {
	if e, ok := s.cache.Peek(spec.key, spec.group); ok {
		return e, cache.Hit, nil
	}
	return s.cache.Fetch(ctx, spec.key, cache.FetchOptions{TTL: spec.ttl, Group: spec.group, Tags: spec.tags},
		func(ctx context.Context) ([]byte, error) {
			if spec.shared {
				ctx = withoutCaller(ctx)
			}
			var body []byte
			err := s.withDB(ctx, func(ctx context.Context) error {
				v, err := load(ctx, s, arg)
				if err != nil {
					return err
				}
				body, err = encode(v)
				return err
			})
			return body, err
		})
}

// rawBody is a loaded value already in its cached form (an item list):
// cachedRead stores it as is instead of encoding it as JSON.
type rawBody []byte

// encode marshals v; an encoding failure is a bug.
func encode(v any) ([]byte, error) {
	if b, ok := v.(rawBody); ok {
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not encode the response")
	}
	return b, nil
}
