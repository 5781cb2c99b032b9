package service

import (
	"context"

	"github.com/modellab/modellab"
)

// CreateUser makes a user and returns its token. Only an admin may.
func (s *Service) CreateUser(ctx context.Context, actor *modellab.User, name string, admin bool) (modellab.User, string, error) {
	if actor == nil || !actor.Admin {
		return modellab.User{}, "", modellab.Errorf(modellab.EFORBIDDEN, "admin only")
	}
	u := modellab.User{Name: name, Admin: admin, CreatedAt: s.stamp()}
	if err := u.Valid(); err != nil {
		return u, "", err
	}
	var tok string
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		tok, err = s.store.CreateUser(ctx, &u)
		return err
	})
	return u, tok, err
}
