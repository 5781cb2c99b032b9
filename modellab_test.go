package modellab_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
)

func ptr[T any](v T) *T { return &v }

func TestModelValid(t *testing.T) {
	owner := ptr("usr_x")
	cases := []struct {
		name string
		m    modellab.Model
		code string
	}{
		{"ok private", modellab.Model{Name: "m", Provider: "p", Visibility: "private", OwnerID: owner}, ""},
		{"ok global", modellab.Model{Name: "m", Provider: "p", Visibility: "global"}, ""},
		{"global with owner", modellab.Model{Name: "m", Provider: "p", Visibility: "global", OwnerID: owner}, modellab.EINVALID},
		{"private without owner", modellab.Model{Name: "m", Provider: "p", Visibility: "private"}, modellab.EINVALID},
		{"no name", modellab.Model{Provider: "p", Visibility: "global"}, modellab.EINVALID},
		{"name too long", modellab.Model{Name: strings.Repeat("é", 201), Provider: "p", Visibility: "global"}, modellab.EINVALID},
		{"name of 200 runes", modellab.Model{Name: strings.Repeat("é", 200), Provider: "p", Visibility: "global"}, ""},
		{"control char", modellab.Model{Name: "a\x00b", Provider: "p", Visibility: "global"}, modellab.EINVALID},
		{"zero context", modellab.Model{Name: "m", Provider: "p", Visibility: "global", ContextLength: ptr(int64(0))}, modellab.EINVALID},
		{"bad visibility", modellab.Model{Name: "m", Provider: "p", Visibility: "public"}, modellab.EINVALID},
		{"multiline description", modellab.Model{Name: "m", Provider: "p", Visibility: "global", Description: "a\nb\tc"}, ""},
	}
	for _, c := range cases {
		if got := modellab.ErrorCode(c.m.Valid()); got != c.code {
			t.Errorf("%s: code %q, want %q", c.name, got, c.code)
		}
	}
}

func TestVisibility(t *testing.T) {
	alice := &modellab.User{ID: "usr_alice"}
	admin := &modellab.User{ID: "usr_admin", Admin: true}
	priv := modellab.Model{Visibility: "private", OwnerID: ptr("usr_alice")}
	glob := modellab.Model{Visibility: "global"}
	cases := []struct {
		m             modellab.Model
		u             *modellab.User
		visible, edit bool
		name          string
	}{
		{priv, alice, true, true, "owner"},
		{priv, admin, false, false, "admin on someone's private model"},
		{priv, nil, false, false, "anonymous"},
		{glob, nil, true, false, "anonymous global"},
		{glob, alice, true, false, "user global"},
		{glob, admin, true, true, "admin global"},
	}
	for _, c := range cases {
		if got := c.m.VisibleTo(c.u); got != c.visible {
			t.Errorf("%s: visible %v, want %v", c.name, got, c.visible)
		}
		if got := c.m.EditableBy(c.u); got != c.edit {
			t.Errorf("%s: editable %v, want %v", c.name, got, c.edit)
		}
	}
}

func TestModelPatchNullAndAbsent(t *testing.T) {
	base := modellab.Model{Name: "m", Provider: "p", Visibility: "private", OwnerID: ptr("usr_a"), ContextLength: ptr(int64(8))}
	cases := []struct {
		body    string
		wantCtx *int64
		wantErr bool
	}{
		{`{}`, ptr(int64(8)), false},
		{`{"context_length": null}`, nil, false},
		{`{"context_length": 16}`, ptr(int64(16)), false},
		{`{"name": null}`, ptr(int64(8)), true},
	}
	for _, c := range cases {
		var p modellab.ModelPatch
		if err := json.Unmarshal([]byte(c.body), &p); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if err := p.Valid(); (err != nil) != c.wantErr {
			t.Errorf("%s: Valid() = %v", c.body, err)
			continue
		}
		got := p.Apply(base, nil).ContextLength
		if (got == nil) != (c.wantCtx == nil) || got != nil && *got != *c.wantCtx {
			t.Errorf("%s: context_length %v, want %v", c.body, got, c.wantCtx)
		}
	}
	// Made global: the owner goes; made private by an admin: the admin owns it.
	var p modellab.ModelPatch
	_ = json.Unmarshal([]byte(`{"visibility":"global"}`), &p)
	if m := p.Apply(base, nil); m.OwnerID != nil || m.Valid() != nil {
		t.Errorf("made global: %+v", m)
	}
	_ = json.Unmarshal([]byte(`{"visibility":"private"}`), &p)
	g := base
	g.Visibility, g.OwnerID = "global", nil
	if m := p.Apply(g, &modellab.User{ID: "usr_admin", Admin: true}); m.OwnerID == nil || *m.OwnerID != "usr_admin" {
		t.Errorf("made private: %+v", m)
	}
}

func TestEventValid(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := modellab.Event{ModelID: "mdl_x", Timestamp: now, Status: "ok", LatencyMS: 12.5}
	if err := ok.Valid(now); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	bad := []func(e *modellab.Event){
		func(e *modellab.Event) { e.ModelID = "" },
		func(e *modellab.Event) { e.Status = "fine" },
		func(e *modellab.Event) { e.InputTokens = -1 },
		func(e *modellab.Event) { e.LatencyMS = -1 },
		func(e *modellab.Event) { e.CostUSD = -0.01 },
		func(e *modellab.Event) { e.Timestamp = now.Add(48 * time.Hour) },
		func(e *modellab.Event) { e.Timestamp = time.Time{} },
	}
	for i, mut := range bad {
		e := ok
		mut(&e)
		if modellab.ErrorCode(e.Valid(now)) != modellab.EINVALID {
			t.Errorf("case %d: want invalid_argument", i)
		}
	}
}

func TestIDsAndTokens(t *testing.T) {
	id := modellab.NewID(modellab.PrefixModel)
	if !modellab.ValidID(id) || !strings.HasPrefix(id, "mdl_") || id == modellab.NewID(modellab.PrefixModel) {
		t.Errorf("NewID: %q", id)
	}
	for _, bad := range []string{"", "a", "../etc/passwd", "mdl_ABC", "mdl_x y", strings.Repeat("a", 65)} {
		if modellab.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
	tok := modellab.NewToken()
	if !strings.HasPrefix(tok, modellab.TokenPrefix) || modellab.HashToken(tok) == tok || len(modellab.HashToken(tok)) != 64 {
		t.Errorf("token %q hash %q", tok, modellab.HashToken(tok))
	}
}

func TestErrorHelpers(t *testing.T) {
	if got := modellab.ErrorCode(nil); got != "" {
		t.Errorf("ErrorCode(nil) = %q", got)
	}
	wrapped := modellab.WrapError(modellab.EUNAVAILABLE, json.Unmarshal([]byte("x"), &struct{}{}), "db down")
	if modellab.ErrorCode(wrapped) != modellab.EUNAVAILABLE || modellab.ErrorMessage(wrapped) != "db down" {
		t.Errorf("wrapped: %v", wrapped)
	}
	internal := modellab.WrapError(modellab.EINTERNAL, nil, "secret detail")
	if modellab.ErrorMessage(internal) != "internal error" {
		t.Errorf("internal message leaked: %q", modellab.ErrorMessage(internal))
	}
}

// TestErrorField: every validation error names the field it is about, so
// that forms can show the message next to it without parsing it.
func TestErrorField(t *testing.T) {
	owner := "usr_a"
	long := strings.Repeat("x", modellab.MaxNameLen+1)
	bad := int64(0)
	cases := []struct {
		name  string
		model modellab.Model
		want  string
	}{
		{"blank name", modellab.Model{Name: " ", Provider: "p", Visibility: "private", OwnerID: &owner}, "name"},
		{"long name", modellab.Model{Name: long, Provider: "p", Visibility: "private", OwnerID: &owner}, "name"},
		{"no provider", modellab.Model{Name: "m", Visibility: "private", OwnerID: &owner}, "provider"},
		{"control in base model", modellab.Model{Name: "m", Provider: "p", BaseModel: "a\x00", Visibility: "private", OwnerID: &owner}, "base_model"},
		{"context length", modellab.Model{Name: "m", Provider: "p", ContextLength: &bad, Visibility: "private", OwnerID: &owner}, "context_length"},
		{"visibility", modellab.Model{Name: "m", Provider: "p", Visibility: "public"}, "visibility"},
	}
	for _, c := range cases {
		err := c.model.Valid()
		if modellab.ErrorCode(err) != modellab.EINVALID {
			t.Fatalf("%s: %v, want invalid_argument", c.name, err)
		}
		if got := modellab.ErrorField(err); got != c.want {
			t.Errorf("%s: field %q, want %q (message %q)", c.name, got, c.want, modellab.ErrorMessage(err))
		}
	}
}
