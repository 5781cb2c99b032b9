package modellab

import "time"

// PrefixToken marks the IDs of API tokens (not the secrets: those start
// with TokenPrefix and are never stored).
const PrefixToken = "tok_"

// Limits of API tokens.
const (
	MaxTokenNameLen = 100
	// MaxTokenLifetime bounds expires_in: ten years, far from any overflow.
	MaxTokenLifetime = 10 * 365 * 24 * time.Hour
)

// Token is an API token as its owner sees it: never the secret, which is
// shown once at creation and stored only as a hash.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	UserID     string     `json:"-"`
}

// Valid checks a token about to be created; now bounds its expiry.
func (t *Token) Valid(now time.Time) error {
	if err := validText("name", t.Name, 1, MaxTokenNameLen); err != nil {
		return err
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(now) {
		return FieldErrorf("expires_at", "expires_at must be in the future")
	}
	if t.UserID == "" {
		return Errorf(EINVALID, "a token needs an owner")
	}
	return nil
}

// Expired reports whether t can no longer authenticate at now.
func (t *Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// TokenUse is a token's use seen at At, as one instance recorded it.
type TokenUse struct {
	ID string
	At time.Time
}
