package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/modellab/modellab"
)

// API tokens: each user lists, creates and revokes their own; an admin
// may revoke anyone's.

// TokenSpec is a token to create. ExpiresIn 0 means it never expires.
type TokenSpec struct {
	Name      string
	ExpiresIn time.Duration
}

// ListTokens returns the caller's tokens, newest first. It is not cached:
// last_used_at moves, and the list is read by its owner only, rarely.
func (s *Service) ListTokens(ctx context.Context, actor *modellab.User) ([]modellab.Token, error) {
	if actor == nil {
		return nil, modellab.Errorf(modellab.EUNAUTHORIZED, "authentication required")
	}
	var out []modellab.Token
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.store.ListTokens(ctx, actor.ID)
		return err
	})
	return out, err
}

// CreateToken mints a token for the caller and returns it with its secret,
// which is shown this once.
func (s *Service) CreateToken(ctx context.Context, actor *modellab.User, spec TokenSpec) (modellab.Token, string, error) {
	if actor == nil {
		return modellab.Token{}, "", modellab.Errorf(modellab.EUNAUTHORIZED, "authentication required")
	}
	if spec.ExpiresIn < 0 || spec.ExpiresIn > modellab.MaxTokenLifetime {
		return modellab.Token{}, "", modellab.FieldErrorf("expires_in_hours",
			"expires_in_hours must be a positive number of hours up to %d", int64(modellab.MaxTokenLifetime/time.Hour))
	}
	t := modellab.Token{Name: spec.Name, UserID: actor.ID, CreatedAt: s.stamp()}
	if spec.ExpiresIn > 0 {
		at := t.CreatedAt.Add(spec.ExpiresIn)
		t.ExpiresAt = &at
	}
	if err := t.Valid(t.CreatedAt); err != nil {
		return t, "", err
	}
	var secret string
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		secret, err = s.store.CreateToken(ctx, &t)
		return err
	})
	return t, secret, err
}

// RevokeToken deletes a token: the owner's, or anyone's for an admin.
// Another user's token is not found, as if it did not exist. Before it
// returns, every cached lookup of the token is dropped, here and (through
// Redis) on the other instances.
func (s *Service) RevokeToken(ctx context.Context, actor *modellab.User, id string) error {
	if actor == nil {
		return modellab.Errorf(modellab.EUNAUTHORIZED, "authentication required")
	}
	notFound := modellab.Errorf(modellab.ENOTFOUND, "token %s not found", id)
	if !modellab.ValidID(id) {
		return notFound
	}
	return s.withDB(ctx, func(ctx context.Context) error {
		t, err := s.store.GetToken(ctx, id)
		if modellab.ErrorCode(err) == modellab.ENOTFOUND || err == nil && t.UserID != actor.ID && !actor.Admin {
			return notFound
		}
		if err != nil {
			return err
		}
		hash, err := s.store.DeleteToken(ctx, id)
		if err != nil {
			return err
		}
		s.auth.revoke(ctx, id, hash)
		return nil
	})
}

// Recording last uses. A token's use is marked at most once a minute per
// instance (an atomic on its cached lookup: nothing else on the hot path),
// and the marks are written in batches by a goroutine, so authenticating
// never waits for the database. last_used_at is therefore late by up to
// tokenUseEvery + tokenUseFlush, and a mark still pending when the process
// dies is lost.
const (
	tokenUseEvery   = time.Minute
	tokenUseFlush   = 5 * time.Second
	tokenUseTimeout = 5 * time.Second
	maxPendingUses  = 100_000
)

type tokenUses struct {
	store Store
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]time.Time

	stop chan struct{}
	done chan struct{}
}

func newTokenUses(st Store, log *slog.Logger) *tokenUses {
	if log == nil {
		log = slog.Default()
	}
	u := &tokenUses{store: st, log: log, pending: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go u.run()
	return u
}

// mark records a use of e's token unless one was recorded less than
// tokenUseEvery ago.
func (u *tokenUses) mark(e *tokenEntry, now time.Time) {
	last, at := e.used.Load(), now.UnixNano()
	if at-last < int64(tokenUseEvery) || !e.used.CompareAndSwap(last, at) {
		return
	}
	u.mu.Lock()
	if len(u.pending) < maxPendingUses {
		u.pending[e.tokenID] = now.UTC()
	}
	u.mu.Unlock()
}

func (u *tokenUses) run() {
	defer close(u.done)
	t := time.NewTicker(tokenUseFlush)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			u.flush(context.Background())
		case <-u.stop:
			u.flush(context.Background())
			return
		}
	}
}

// flush writes the pending marks in one transaction. A failed write is
// logged and dropped: the next use marks the token again.
func (u *tokenUses) flush(ctx context.Context) {
	u.mu.Lock()
	if len(u.pending) == 0 {
		u.mu.Unlock()
		return
	}
	batch := make([]modellab.TokenUse, 0, len(u.pending))
	for id, at := range u.pending {
		batch = append(batch, modellab.TokenUse{ID: id, At: at})
	}
	clear(u.pending)
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, tokenUseTimeout)
	defer cancel()
	if err := u.store.TouchTokens(ctx, batch); err != nil {
		u.log.Warn("could not record token uses", "tokens", len(batch), "err", err)
	}
}

func (u *tokenUses) close() {
	close(u.stop)
	<-u.done
}
