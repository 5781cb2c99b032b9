package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/fakeopenai"
)

func init() {
	// Event streams are text too: the document says so, and that is what
	// the check can hold them to (the events are checked by the tests of
	// the stream itself).
	openapi3filter.RegisterBodyDecoder("text/event-stream", textDecoder)
}

// chatOA is what the chat's part of the OpenAPI test works with: alice's
// token and logged-in client, and another user.
type chatOA struct {
	o     *oaCheck
	c     *http.Client // alice's session
	csrf  string
	alice string
	bob   string
}

// exerciseChat sends every request of the gateway and the chat through
// the OpenAPI check.
func exerciseChat(t *testing.T, x chatOA) {
	t.Helper()
	o, e := x.o, x.o.e
	up := fakeopenai.New(t)
	m := e.model(x.alice, map[string]any{"name": "oa-bot", "provider": "local", "base_model": fakeopenai.Echo})
	e.server(x.alice, map[string]any{"name": "oa-bot-1", "model_id": m.ID, "status": "running", "endpoint": up.BaseURL()})
	off := e.model(x.alice, map[string]any{"name": "oa-off", "provider": "local"})
	broken := e.model(x.alice, map[string]any{"name": "oa-500", "provider": "local", "base_model": fakeopenai.Status500})
	e.server(x.alice, map[string]any{"name": "oa-500-1", "model_id": broken.ID, "status": "running", "endpoint": up.BaseURL()})
	msgs := []map[string]string{{"role": "user", "content": "hi"}}

	// The gateway.
	r := o.json("GET", "/v1/models", x.alice, nil, 200)
	o.json("GET", "/v1/models", x.alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/v1/models", "", nil, 401)
	o.json("POST", "/v1/chat/completions", x.alice, map[string]any{"model": "oa-bot", "messages": msgs}, 200)
	o.json("POST", "/v1/chat/completions", x.alice, map[string]any{"model": "oa-bot", "messages": msgs, "stream": true}, 200)
	o.json("POST", "/v1/chat/completions", x.alice, map[string]any{"messages": msgs}, 400)
	o.json("POST", "/v1/chat/completions", "", map[string]any{"model": "oa-bot", "messages": msgs}, 401)
	o.json("POST", "/v1/chat/completions", x.bob, map[string]any{"model": "oa-bot", "messages": msgs}, 404)
	o.json("POST", "/v1/chat/completions", x.alice, map[string]any{"model": "oa-off", "messages": msgs}, 503)
	o.json("POST", "/v1/chat/completions", x.alice, map[string]any{"model": "oa-500", "messages": msgs}, 502)

	conv := exerciseConversations(t, x, m, off)
	exerciseChatPages(t, x, m, off)
	o.json("DELETE", "/api/conversations/"+conv, x.bob, nil, 404)
	o.json("DELETE", "/api/conversations/"+conv, x.alice, nil, 204)
	o.json("DELETE", "/api/conversations/"+conv, x.alice, nil, 404)
}

// exerciseConversations sends the conversation API's requests and returns
// a conversation to delete.
func exerciseConversations(t *testing.T, x chatOA, m, off modellab.Model) string {
	o, e := x.o, x.o.e
	var conv modellab.Conversation
	r := o.json("POST", "/api/conversations", x.alice, map[string]any{"model_id": m.ID, "title": "oa"}, 201)
	if err := json.Unmarshal([]byte(r.body), &conv); err != nil {
		t.Fatal(err)
	}
	offConv := e.api("POST", "/api/conversations", x.alice, map[string]any{"model_id": off.ID}, 201)
	var oc modellab.Conversation
	if err := json.Unmarshal(offConv, &oc); err != nil {
		t.Fatal(err)
	}
	o.json("POST", "/api/conversations", x.alice, map[string]any{"model_id": "mdl_nope0000000000000000"}, 400)
	o.json("POST", "/api/conversations", "", map[string]any{"model_id": m.ID}, 401)
	r = o.json("GET", "/api/conversations", x.alice, nil, 200)
	o.json("GET", "/api/conversations", x.alice, nil, 304, "If-None-Match", r.header.Get("ETag"))
	o.json("GET", "/api/conversations", "", nil, 401)
	r = o.json("POST", "/api/conversations/"+conv.ID+"/messages", x.alice, map[string]any{"content": "hello"}, 200)
	if !strings.Contains(r.body, `"done":true`) {
		t.Errorf("message stream: %s", r.body)
	}
	o.json("POST", "/api/conversations/"+conv.ID+"/messages", x.alice, map[string]any{"content": ""}, 400)
	o.json("POST", "/api/conversations/"+conv.ID+"/messages", x.bob, map[string]any{"content": "x"}, 404)
	o.json("POST", "/api/conversations/"+oc.ID+"/messages", x.alice, map[string]any{"content": "x"}, 503)
	o.json("GET", "/api/conversations/"+conv.ID, x.alice, nil, 200)
	o.json("GET", "/api/conversations/"+conv.ID, x.bob, nil, 404)
	return conv.ID
}

// exerciseChatPages sends the chat pages' requests.
func exerciseChatPages(t *testing.T, x chatOA, m, off modellab.Model) {
	o, e := x.o, x.o.e
	offConv := e.api("POST", "/api/conversations", x.alice, map[string]any{"model_id": off.ID}, 201)
	var oc modellab.Conversation
	if err := json.Unmarshal(offConv, &oc); err != nil {
		t.Fatal(err)
	}
	c := x.c
	o.exchange(e.client(), "GET", "/chat", "", "", nil, 303)
	o.exchange(c, "GET", "/chat", "", "", nil, 200)
	r := o.form(c, "/chat", url.Values{"csrf": {x.csrf}, "model_id": {m.ID}}, 303)
	page := r.header.Get("Location")
	o.form(c, "/chat", url.Values{"csrf": {x.csrf}, "model_id": {"mdl_nope0000000000000000"}}, 400)
	o.form(c, "/chat", url.Values{"csrf": {"wrong"}, "model_id": {m.ID}}, 403)
	o.exchange(c, "GET", page, "", "", nil, 200)
	o.exchange(c, "GET", page+"?error=gateway_timeout", "", "", nil, 200)
	o.exchange(c, "GET", "/chat/cnv_nope0000000000000000", "", "", nil, 404)
	o.form(c, page+"/messages", url.Values{"csrf": {x.csrf}, "content": {"hi"}}, 303)
	o.form(c, page+"/messages", url.Values{"csrf": {x.csrf}, "content": {"hi"}}, 200, "Accept", "text/event-stream")
	o.form(c, page+"/messages", url.Values{"csrf": {x.csrf}, "content": {" "}}, 400)
	o.form(c, "/chat/"+oc.ID+"/messages", url.Values{"csrf": {x.csrf}, "content": {"x"}}, 503)
	o.form(c, "/chat/cnv_nope0000000000000000/messages", url.Values{"csrf": {x.csrf}, "content": {"x"}}, 404)
	o.exchange(c, "GET", "/static/chat.js", "", "", nil, 200)
	o.form(c, page+"/delete", url.Values{"csrf": {"wrong"}}, 403)
	o.form(c, page+"/delete", url.Values{"csrf": {x.csrf}}, 303)
	o.form(c, page+"/delete", url.Values{"csrf": {x.csrf}}, 404)
}
