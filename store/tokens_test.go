package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

func testTokens(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := mustUser(t, db, "ada")
	other := mustUser(t, db, "bob")

	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	tok := modellab.Token{Name: "ci", UserID: u.ID, ExpiresAt: &exp}
	secret, err := db.CreateToken(ctx, &tok)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if !strings.HasPrefix(secret, modellab.TokenPrefix) || !strings.HasPrefix(tok.ID, modellab.PrefixToken) || tok.CreatedAt.IsZero() {
		t.Fatalf("CreateToken = %q, %+v; want an mlk_ secret and a tok_ ID", secret, tok)
	}
	gu, gt, err := db.TokenByHash(ctx, modellab.HashToken(secret))
	if err != nil || gu.ID != u.ID || gt.ID != tok.ID || gt.ExpiresAt == nil || !gt.ExpiresAt.Equal(exp) {
		t.Fatalf("TokenByHash = %+v, %+v, %v; want %s's token %s expiring at %v", gu, gt, err, u.ID, tok.ID, exp)
	}

	list, err := db.ListTokens(ctx, u.ID)
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].Name != store.InitialTokenName {
		t.Fatalf("ListTokens = %+v, %v; want ci then the initial token", list, err)
	}
	if got, err := db.GetToken(ctx, tok.ID); err != nil || got.UserID != u.ID || got.Name != "ci" {
		t.Errorf("GetToken = %+v, %v", got, err)
	}

	// last_used_at: written, and never moved back by an older use.
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := db.TouchTokens(ctx, []modellab.TokenUse{{ID: tok.ID, At: at}, {ID: "tok_gone", At: at}}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}
	if err := db.TouchTokens(ctx, []modellab.TokenUse{{ID: tok.ID, At: at.Add(-time.Minute)}}); err != nil {
		t.Fatalf("TouchTokens: %v", err)
	}
	if got, _ := db.GetToken(ctx, tok.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
		t.Errorf("last_used_at = %v, want %v", got.LastUsedAt, at)
	}

	bad := []modellab.Token{
		{Name: "", UserID: u.ID},
		{Name: strings.Repeat("x", modellab.MaxTokenNameLen+1), UserID: u.ID},
		{Name: "old", UserID: u.ID, ExpiresAt: ptr(time.Now().Add(-time.Second))},
	}
	for _, b := range bad {
		if _, err := db.CreateToken(ctx, &b); code(err) != modellab.EINVALID {
			t.Errorf("CreateToken(%q, expires %v): err = %v, want invalid_argument", b.Name, b.ExpiresAt, err)
		}
	}
	if _, err := db.CreateToken(ctx, &modellab.Token{Name: "x", UserID: "usr_nobody"}); err == nil {
		t.Error("CreateToken for a missing user: no error")
	}

	hash, err := db.DeleteToken(ctx, tok.ID)
	if err != nil || hash != modellab.HashToken(secret) {
		t.Fatalf("DeleteToken = %q, %v; want the secret's hash", hash, err)
	}
	if _, err := db.DeleteToken(ctx, tok.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("second DeleteToken: err = %v, want not_found", err)
	}
	if _, _, err := db.TokenByHash(ctx, hash); code(err) != modellab.ENOTFOUND {
		t.Errorf("TokenByHash after delete: err = %v, want not_found", err)
	}
	if _, err := db.GetToken(ctx, tok.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("GetToken after delete: err = %v, want not_found", err)
	}

	// IssueToken: by user name; unknown users are not_found.
	s2, err := db.IssueToken(ctx, "bob", "ops", 90*time.Second)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	if _, gt, err := db.TokenByHash(ctx, modellab.HashToken(s2)); err != nil || gt.UserID != other.ID || gt.ExpiresAt == nil {
		t.Errorf("issued token = %+v, %v; want bob's, expiring", gt, err)
	}
	if _, err := db.IssueToken(ctx, "nobody", "x", 0); code(err) != modellab.ENOTFOUND {
		t.Errorf("IssueToken for an unknown user: err = %v, want not_found", err)
	}
}
