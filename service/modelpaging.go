package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"

	"github.com/modellab/modellab"
)

// Paging of the model list. A page token is an opaque cursor: the sort key
// (name, id) of the last item of the previous page, so pages stay stable
// while models are added or removed before or after the cursor. Pages are
// cut from the same cached parts as the whole list.

// MaxPageLimit bounds ?limit.
const MaxPageLimit = 1000

const pageTokenVersion = "m1:"

// ParsePage reads ?limit and ?page_token. ok is false when the caller asked
// for no page (no limit): the whole list.
func ParsePage(limit, token string) (cursor []byte, n int, ok bool, err error) {
	if limit == "" {
		if token != "" {
			return nil, 0, false, modellab.FieldErrorf("limit", "limit is required with page_token")
		}
		return nil, 0, false, nil
	}
	n, perr := strconv.Atoi(limit)
	if perr != nil || n < 1 || n > MaxPageLimit {
		return nil, 0, false, modellab.FieldErrorf("limit", "limit must be an integer from 1 to %d", MaxPageLimit)
	}
	if token == "" {
		return nil, n, true, nil
	}
	raw, derr := base64.RawURLEncoding.DecodeString(token)
	if derr != nil || !bytes.HasPrefix(raw, []byte(pageTokenVersion)) || !bytes.Contains(raw, []byte{0}) {
		return nil, 0, false, modellab.FieldErrorf("page_token", "page_token is not a token this server issued")
	}
	return raw[len(pageTokenVersion):], n, true, nil
}

func pageToken(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte(pageTokenVersion), key...))
}

// ModelsListPage answers one page of the list ModelsList answers whole: up
// to limit models after cursor (nil: from the start), and the token of the
// next page when more follow.
func (s *Service) ModelsListPage(ctx context.Context, u *modellab.User, cursor []byte, limit int) (Answer, error) {
	g, p, err := s.modelParts(ctx, u)
	if err != nil {
		return Answer{}, err
	}
	if err := errorsJoinCheck(g, p); err != nil {
		return Answer{}, modellab.WrapError(modellab.EINTERNAL, err, "could not read the model list")
	}
	i, j := 0, 0
	if cursor != nil {
		i, j = g.items.after(cursor), p.items.after(cursor)
	}
	body := append(make([]byte, 0, 1024), modelsShape.prefix...)
	var last []byte
	for n := 0; n < limit && (i < g.items.Len() || j < p.items.Len()); n++ {
		l, k := g.items, &i
		if i == g.items.Len() || j < p.items.Len() && bytes.Compare(p.items.Key(j), g.items.Key(i)) < 0 {
			l, k = p.items, &j
		}
		if n > 0 {
			body = append(body, ',')
		}
		body = append(body, l.JSON(*k)...)
		last = l.Key(*k)
		*k++
	}
	body = append(body, ']')
	if i < g.items.Len() || j < p.items.Len() {
		body = append(append(append(body, `,"next_page_token":"`...), pageToken(last)...), '"')
	}
	body = append(body, '}')
	a := Answer{body: body, ETag: pageETag(g, p, cursor, limit), Result: worse(g.res, p.res), comp: s.comp}
	s.cache.Record(GroupModels, a.Result)
	return a, nil
}

// pageETag derives a page's validator from its parts' and its window.
func pageETag(g, p part, cursor []byte, limit int) string {
	h := sha256.New()
	h.Write([]byte(g.etag))
	h.Write([]byte(p.etag))
	h.Write(cursor)
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(limit)))
	var sum [32]byte
	return `"p` + hex.EncodeToString(h.Sum(sum[:0])[:16]) + `"`
}
