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

// ttlJitter is the most of its TTL a key's hash takes off. Entries filled
// together (a crowd's warm-up, every user after a restart) would otherwise
// expire together and reload in the same second: a crowd run saw 1,000
// per-user loads in one. A key keeps its own share, so that a test's clock
// and an operator's reading of a TTL stay predictable.
const ttlJitter = 0.1

// fetchOptions is spec for the cache. A value for everyone (shared) keeps
// its TTL: there is one of it, nothing to spread.
func (spec readSpec) fetchOptions() cache.FetchOptions {
	ttl := spec.ttl
	if !spec.shared {
		ttl -= time.Duration(float64(ttl) * ttlJitter * keyFraction(spec.key))
	}
	return cache.FetchOptions{TTL: ttl, Group: spec.group, Tags: spec.tags}
}

// keyFraction maps key to [0, 1) by its FNV-1a hash: the same for a key
// on every instance and in every run.
func keyFraction(key string) float64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return float64(h>>11) / (1 << 53)
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
	return s.cache.Fetch(ctx, spec.key, spec.fetchOptions(),
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

// rawBody is a loaded value already in its cached form (an item list, an
// answer encoded by hand): cachedRead stores it as is instead of encoding
// it as JSON.
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
