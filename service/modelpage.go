package service

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"strings"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
)

// Scopes of the models page.
const (
	ScopeAll    = "all"
	ScopeMine   = "mine"
	ScopeGlobal = "global"
)

// ModelQuery selects one page of the models a caller sees: a scope, a
// search over name, provider and base model, and a window of the matches.
// Find names a model id whose name the page wants (a "created" banner).
type ModelQuery struct {
	Scope  string
	Search string
	Offset int
	Limit  int
	Find   string
}

// ModelCounts counts the models a caller sees by scope.
type ModelCounts struct{ All, Mine, Global int }

// ModelPage is one window of the matching models, decoded; only the rows
// shown are decoded, however long the list.
type ModelPage struct {
	Models   []modellab.Model
	Total    ModelCounts // all the caller sees
	Matching ModelCounts // matching the search
	Found    string      // the name of Find, when it is among them
	ETag     string      // changes whenever any of it may
	Result   cache.Result
}

// ModelsView is u's model list as the pages read it: its two cached parts,
// read once per page view. Its ETag changes whenever anything a page shows
// of it may, so a page can look for its rendered copy before it reads any
// item.
type ModelsView struct {
	ETag   string
	Result cache.Result
	Total  ModelCounts
	g, p   part
}

// ModelsView reads u's model list for a page (counted as one read).
func (s *Service) ModelsView(ctx context.Context, u *modellab.User) (*ModelsView, error) {
	g, p, err := s.modelParts(ctx, u)
	if err != nil {
		return nil, err
	}
	v := &ModelsView{ETag: composedETag("page", g, p), Result: worse(g.res, p.res), g: g, p: p}
	v.Total = ModelCounts{All: g.items.Len() + p.items.Len(), Mine: p.items.Len(), Global: g.items.Len()}
	s.cache.Record(GroupModels, v.Result)
	return v, nil
}

// Page returns one window of the view's models, decoding only those.
func (v *ModelsView) Page(q ModelQuery) (ModelPage, error) {
	if err := errorsJoinCheck(v.g, v.p); err != nil {
		return ModelPage{}, modellab.WrapError(modellab.EINTERNAL, err, "could not read the model list")
	}
	out := ModelPage{ETag: v.ETag, Result: v.Result, Total: v.Total}
	needle := []byte(strings.ToLower(strings.TrimSpace(q.Search)))
	n := 0
	for it := range mergedItems(v.g, v.p) {
		l := it.list
		if len(needle) > 0 && !bytes.Contains(l.Aux(it.i), needle) {
			continue
		}
		global := it.part == 0
		out.Matching.All++
		if global {
			out.Matching.Global++
		} else {
			out.Matching.Mine++
		}
		if q.Find != "" && bytes.HasSuffix(l.Key(it.i), []byte("\x00"+q.Find)) {
			out.Found, _, _ = strings.Cut(string(l.Key(it.i)), "\x00")
		}
		if !inScope(q.Scope, global) {
			continue
		}
		if n >= q.Offset && n < q.Offset+q.Limit {
			var m modellab.Model
			if err := json.Unmarshal(l.JSON(it.i), &m); err != nil {
				return ModelPage{}, modellab.WrapError(modellab.EINTERNAL, err, "could not decode a model")
			}
			out.Models = append(out.Models, m)
		}
		n++
	}
	return out, nil
}

func inScope(scope string, global bool) bool {
	return scope == ScopeAll || scope == ScopeGlobal && global || scope == ScopeMine && !global
}

func errorsJoinCheck(parts ...part) error {
	for _, p := range parts {
		if err := p.items.check(); err != nil {
			return err
		}
	}
	return nil
}

// mergedRef is one item of a merge of two parts, in key order.
type mergedRef struct {
	part uint8
	list itemList
	i    int
}

// mergedItems yields the items of a and b in key order.
func mergedItems(a, b part) iter.Seq[mergedRef] {
	return func(yield func(mergedRef) bool) {
		i, j := 0, 0
		for i < a.items.Len() || j < b.items.Len() {
			r := mergedRef{1, b.items, j}
			if j == b.items.Len() || i < a.items.Len() && bytes.Compare(a.items.Key(i), b.items.Key(j)) < 0 {
				r = mergedRef{0, a.items, i}
				i++
			} else {
				j++
			}
			if !yield(r) {
				return
			}
		}
	}
}
