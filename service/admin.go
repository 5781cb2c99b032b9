package service

import (
	"context"
	"errors"
	"slices"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// The admin view of the cache: its state, hit ratios, hottest keys and a
// bounded browser of its entries. Admins only.

// GroupRatio is one endpoint's cache results and hit ratio.
type GroupRatio struct {
	Name string
	cache.GroupStats
	Ratio float64 // hits (fresh or stale) over all answers; 0 with none
}

// CacheReport is the state of the cache as an admin sees it.
type CacheReport struct {
	Stats  cache.Stats
	Groups []GroupRatio
	Hot    []cache.KeyCount
}

func requireAdmin(u *modellab.User) error {
	if u == nil || !u.Admin {
		return modellab.Errorf(modellab.EFORBIDDEN, "admin only")
	}
	return nil
}

// hotKeysShown is how many of the hottest keys the report lists.
const hotKeysShown = 20

// CacheReport returns the cache's state, each endpoint's hit ratio and the
// hottest keys.
func (s *Service) CacheReport(u *modellab.User) (CacheReport, error) {
	if err := requireAdmin(u); err != nil {
		return CacheReport{}, err
	}
	r := CacheReport{Stats: s.cache.Stats(), Hot: s.cache.HotKeys(hotKeysShown)}
	for _, g := range Groups {
		st := r.Stats.Groups[g]
		gr := GroupRatio{Name: g, GroupStats: st}
		if n := st.Hit + st.Stale + st.Miss + st.Bypass; n > 0 {
			gr.Ratio = float64(st.Hit+st.Stale) / float64(n)
		}
		r.Groups = append(r.Groups, gr)
	}
	slices.SortStableFunc(r.Groups, func(a, b GroupRatio) int { return cmpUint(b.Hit+b.Miss, a.Hit+a.Miss) })
	return r, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// browsePageSize is how many entries one page of the browser shows.
const browsePageSize = 50

// BrowseCache lists the entries whose keys start with prefix, a page at a
// time (cursor "" starts): freshness, size and tags of each.
func (s *Service) BrowseCache(ctx context.Context, u *modellab.User, prefix, cursor string) (cache.BrowsePage, error) {
	if err := requireAdmin(u); err != nil {
		return cache.BrowsePage{}, err
	}
	if len(prefix) > maxPurgeLen {
		return cache.BrowsePage{}, modellab.FieldErrorf("prefix", "prefix must be at most %d characters", maxPurgeLen)
	}
	p, err := s.cache.Browse(ctx, prefix, cursor, browsePageSize)
	switch {
	case errors.Is(err, cache.ErrBadCursor):
		return p, modellab.FieldErrorf("cursor", "cursor is not one this page handed out (or the cache changed tier): start again")
	case err != nil:
		return p, modellab.WrapError(modellab.EUNAVAILABLE, err, "could not read the cache, try again")
	}
	return p, nil
}

// PurgeAs is Purge for a caller who must be an admin.
func (s *Service) PurgeAs(ctx context.Context, u *modellab.User, p Purge) (int, error) {
	if err := requireAdmin(u); err != nil {
		return 0, err
	}
	return s.Purge(ctx, p)
}
