package service

import (
	"context"

	"github.com/modellab/modellab"
)

// Purge names what an admin drops from the cache: exactly one of a glob
// pattern over keys ("api:models:*"), an exact tag, or an exact key.
type Purge struct {
	Pattern, Tag, Key string
}

const maxPurgeLen = 256

// Purge drops entries on every instance and returns how many keys it
// removed (for a tag, the tag itself: the entries it covers become absent
// without being counted).
func (s *Service) Purge(ctx context.Context, p Purge) (int, error) {
	set := 0
	for _, v := range []string{p.Pattern, p.Tag, p.Key} {
		if v != "" {
			set++
		}
		if len(v) > maxPurgeLen {
			return 0, modellab.FieldErrorf("pattern", "pattern, tag and key must be at most %d characters", maxPurgeLen)
		}
	}
	if set != 1 {
		return 0, modellab.FieldErrorf("pattern", "give exactly one of pattern (e.g. \"api:models:*\"), tag or key")
	}
	switch {
	case p.Tag != "":
		s.cache.InvalidateTag(ctx, p.Tag)
		return 1, nil
	case p.Key != "":
		s.cache.Invalidate(ctx, p.Key)
		return 1, nil
	}
	n, err := s.cache.InvalidatePattern(ctx, p.Pattern)
	if err != nil {
		return 0, modellab.WrapError(modellab.EUNAVAILABLE, err, "invalidation failed, try again")
	}
	return n, nil
}
