package server

import (
	"testing"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// bodyTypes are the input types of every JSON body the API decodes, one
// constructor each, so that every input is tried against every decoder.
var bodyTypes = []struct {
	name  string
	new   func() any
	valid func(v any) // the validation the handler runs next, if any
}{
	{"CreateModelInput", func() any { return new(service.CreateModelInput) }, nil},
	{"ModelPatch", func() any { return new(modellab.ModelPatch) }, func(v any) { _ = v.(*modellab.ModelPatch).Valid() }},
	{"CreateServerInput", func() any { return new(service.CreateServerInput) }, nil},
	{"ServerPatch", func() any { return new(modellab.ServerPatch) }, func(v any) { _ = v.(*modellab.ServerPatch).Valid() }},
	{"eventsBody", func() any { return new(eventsBody) }, nil},
	{"createUserBody", func() any { return new(createUserBody) }, nil},
	{"invalidateBody", func() any { return new(invalidateBody) }, nil},
}

// FuzzDecodeJSON feeds arbitrary bytes to decodeBody with every request
// body type: it never panics, and every rejection is a 400
// invalid_argument with a message, never a 500.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"m","provider":"acme","context_length":4096,"visibility":"global"}`,
		`{"name":null,"description":null,"context_length":-1}`,
		`{"name":"s","model_id":"mdl_abc","status":"running","last_heartbeat":"2026-01-01T00:00:00Z"}`,
		`{"model_id":null,"last_heartbeat":null}`,
		`{"events":[{"model_id":"mdl_x","input_tokens":1,"output_tokens":2,"latency_ms":3.5,"status":"ok","cost_usd":0.1}]}`,
		`{"events":[{"timestamp":"not a time"}]}`,
		`{"name":"bob","admin":true}`,
		`{"pattern":"api:models:*"}`,
		`{"name":"a"} {"name":"b"}`,
		`{"context_length":1e400}`,
		`{"name":"\ud800"}`,
		`[1,2,3]`,
		`{"unknown":1}`,
		"\xff\xfe",
		``,
		`{"events":[` + `{},` + `{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, bt := range bodyTypes {
			v := bt.new()
			err := decodeBody(body, v)
			if err == nil {
				if bt.valid != nil {
					bt.valid(v)
				}
				continue
			}
			if code := modellab.ErrorCode(err); code != modellab.EINVALID {
				t.Fatalf("%s: decodeBody(%q) = %v (code %s), want invalid_argument", bt.name, body, err, code)
			}
			if modellab.ErrorMessage(err) == "" {
				t.Fatalf("%s: decodeBody(%q): error without a message", bt.name, body)
			}
			if transport.StatusOf(err) != 400 {
				t.Fatalf("%s: decodeBody(%q): status %d, want 400", bt.name, body, transport.StatusOf(err))
			}
		}
	})
}
