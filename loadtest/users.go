package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// A crowd: instead of one token, the requests of a run can be spread over
// many users' tokens (Config.Tokens), as real traffic is. Every request
// takes the next token in turn (one counter shared by all connections), so
// each user's cache entries are read as often as the others'. Pages accept
// Authorization: Bearer too, so the same works for page targets.

// LoadUsers reads the tokens of the users listed in a file: the JSON that
// `modellab seed` prints ({"users": [{"token": …}, …], …}), or a plain
// JSON array of such users or of token strings.
func LoadUsers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	toks, err := ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return toks, nil
}

// ParseUsers is LoadUsers on the file's bytes.
func ParseUsers(b []byte) ([]string, error) {
	type user struct {
		Token string `json:"token"`
	}
	var users []user
	var seed struct {
		Users []user `json:"users"`
	}
	var plain []string
	switch {
	case json.Unmarshal(b, &seed) == nil && seed.Users != nil:
		users = seed.Users
	case json.Unmarshal(b, &plain) == nil:
		for _, t := range plain {
			users = append(users, user{t})
		}
	case json.Unmarshal(b, &users) == nil:
	default:
		return nil, errors.New(`want the JSON that modellab seed prints ({"users": [{"token": …}]})`)
	}
	toks := make([]string, 0, len(users))
	for i, u := range users {
		t := strings.TrimSpace(u.Token)
		if t == "" {
			return nil, fmt.Errorf("user %d has no token", i)
		}
		if err := checkHeader("Authorization: Bearer " + t); err != nil || strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("user %d: the token cannot be sent in a header", i)
		}
		toks = append(toks, t)
	}
	if len(toks) == 0 {
		return nil, errors.New("no users")
	}
	return toks, nil
}

// requestSet is the pre-serialized requests of one target: one, or one
// per token of a crowd, taken in turn.
type requestSet struct {
	reqs [][]byte
	next atomic.Uint64
}

func newRequestSet(ep endpoint, path string, cfg Config) *requestSet {
	if len(cfg.Tokens) == 0 {
		return &requestSet{reqs: [][]byte{buildRequest(ep, path, cfg.Token, cfg.Headers...)}}
	}
	s := &requestSet{reqs: make([][]byte, len(cfg.Tokens))}
	for i, tok := range cfg.Tokens {
		s.reqs[i] = buildRequest(ep, path, tok, cfg.Headers...)
	}
	return s
}

// pick returns the request to send next.
func (s *requestSet) pick() []byte {
	if len(s.reqs) == 1 {
		return s.reqs[0]
	}
	return s.reqs[(s.next.Add(1)-1)%uint64(len(s.reqs))]
}
