package service

import (
	"strings"

	"github.com/maypok86/otter/v2"
)

// The server status is composed from three cached parts: the user's
// servers and the two parts of the user's model list, whose items give the
// model each server runs. A model a server runs that is in neither part is
// one the user may not see (or one just deleted): "model" is null.

// statusPlan is valid while the three parts keep the ETags it was made
// from.
type statusPlan struct {
	etags [3]string
	etag  string
}

// modelIndex maps a model id to its item in a part, built once per part
// version (by the part's ETag).
type modelIndex map[string]int

func newIndexCache() *otter.Cache[string, modelIndex] {
	return otter.Must(&otter.Options[string, modelIndex]{MaximumSize: 20_000})
}

func (c *composer) index(p part) modelIndex {
	if ix, ok := c.indexes.GetIfPresent(p.etag); ok {
		return ix
	}
	ix := make(modelIndex, p.items.Len())
	for i := 0; i < p.items.Len(); i++ {
		_, id, _ := strings.Cut(string(p.items.Key(i)), "\x00")
		ix[id] = i
	}
	c.indexes.Set(p.etag, ix)
	return ix
}

// status answers key's server status from the servers part sv and the
// model parts g (global) and p (the user's).
func (c *composer) status(key string, sv, g, p part) (Answer, error) {
	res := worse(worse(sv.res, g.res), p.res)
	etags := [3]string{sv.etag, g.etag, p.etag}
	pl, ok := c.statusPlans.GetIfPresent(key)
	if ok && pl.etags == etags {
		if body, ok := c.bodies.GetIfPresent(pl.etag); ok {
			return Answer{body: body.b, ETag: pl.etag, Result: res, comp: c}, nil
		}
	}
	for _, x := range []part{sv, g, p} {
		if err := x.items.check(); err != nil {
			return Answer{}, errItemList
		}
	}
	if !ok || pl.etags != etags {
		pl = &statusPlan{etags: etags, etag: composedETag("status", sv, g, p)}
		c.statusPlans.Set(key, pl)
	}
	body := c.writeStatus(make([]byte, 0, len(sv.items)+4096), sv, g, p)
	c.bodies.Set(pl.etag, &bodyRef{body})
	return Answer{body: body, ETag: pl.etag, Result: res, comp: c}, nil
}

// writeStatus appends the status body: every server with "model" added,
// then the summary.
func (c *composer) writeStatus(b []byte, sv, g, p part) []byte {
	gi, pi := c.index(g), c.index(p)
	b = append(b, `{"servers":[`...)
	for i := 0; i < sv.items.Len(); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(b, sv.items.JSON(i)...), `,"model":`...)
		id := string(sv.items.Aux(i))
		switch {
		case id == "":
			b = append(b, "null"...)
		case hasIndex(pi, id):
			b = append(b, p.items.JSON(pi[id])...)
		case hasIndex(gi, id):
			b = append(b, g.items.JSON(gi[id])...)
		default:
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	b = append(append(b, `],"summary":`...), sv.items.Extra()...)
	return append(b, '}')
}

func hasIndex(ix modelIndex, id string) bool {
	_, ok := ix[id]
	return ok
}
