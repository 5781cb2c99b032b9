package web

import (
	"encoding/json"
	"sync"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// The cache hands pages the encoded JSON bodies of the API. Decoding a
// model list of thousands of rows on every page view would cost more than
// the cache saved, so decoded values are kept by the entry's ETag (a hash
// of the body): a hit of the same entry decodes nothing. Decoded values are
// shared between requests and must be treated as read-only.

type decodeCache struct {
	mu  sync.Mutex
	max int
	m   map[string]any
}

func newDecodeCache(max int) *decodeCache {
	return &decodeCache{max: max, m: make(map[string]any, max)}
}

func (c *decodeCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *decodeCache) put(key string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Dropping everything is crude but bounded and cheap; the live
		// entries come back on their next view.
		clear(c.m)
	}
	c.m[key] = v
}

// decodeEntry returns e's body decoded as T, shared with other requests,
// and releases e.
func decodeEntry[T any](c *decodeCache, kind string, e *service.Answer) (*T, error) {
	defer e.Release()
	key := kind + e.ETag
	if v, ok := c.get(key); ok {
		if t, ok := v.(*T); ok {
			return t, nil
		}
	}
	t := new(T)
	if err := json.Unmarshal(e.Body(), t); err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not decode %s", kind)
	}
	c.put(key, t)
	return t, nil
}
