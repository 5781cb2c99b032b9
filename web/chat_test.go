package web_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/fakeopenai"
	"github.com/modellab/modellab/service"
)

// withGateway gives the service a gateway with short timeouts, so that the
// timeout states render in a test's time.
func withGateway(c *service.Config) {
	c.Gateway = gateway.New(gateway.Config{FirstByteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
}

// chatUser is a user with models served by a fake inference server.
type chatUser struct {
	e     *env
	up    *fakeopenai.Server
	token string
	user  *modellab.User
}

func newChatUser(e *env, name string) *chatUser {
	e.t.Helper()
	cu := &chatUser{e: e, up: fakeopenai.New(e.t)}
	cu.token, _ = e.user(name)
	u, err := e.svc.Authenticate(context.Background(), cu.token)
	if err != nil {
		e.t.Fatal(err)
	}
	cu.user = u
	return cu
}

// serve registers a model (base model: the fake's behaviour) and a server
// for it in status.
func (cu *chatUser) serve(name, behaviour, status string) modellab.Model {
	cu.e.t.Helper()
	m := cu.e.model(cu.token, map[string]any{"name": name, "provider": "local", "base_model": behaviour})
	cu.e.server(cu.token, map[string]any{"name": "srv-" + name, "model_id": m.ID, "status": status, "endpoint": cu.up.BaseURL()})
	return m
}

func (cu *chatUser) conversation(m modellab.Model, title string) modellab.Conversation {
	cu.e.t.Helper()
	c, err := cu.e.svc.CreateConversation(context.Background(), cu.user, service.CreateConversationInput{ModelID: m.ID, Title: title})
	if err != nil {
		cu.e.t.Fatal(err)
	}
	return c
}

// leaveAfterFirst is a reader who leaves after the first piece.
type leaveAfterFirst struct{}

func (leaveAfterFirst) Start() error       { return nil }
func (leaveAfterFirst) Delta(string) error { return errors.New("gone") }

type keepAll struct{}

func (keepAll) Start() error       { return nil }
func (keepAll) Delta(string) error { return nil }

// say sends content to conversation c through the service.
func (cu *chatUser) say(c modellab.Conversation, content string, sink service.ReplySink) modellab.Message {
	cu.e.t.Helper()
	m, _ := cu.e.svc.SendMessage(context.Background(), cu.user, service.SendMessageInput{ConversationID: c.ID, Content: content, Sink: sink})
	if m.ID == "" {
		cu.e.t.Fatalf("SendMessage to %s stored nothing", c.ID)
	}
	return m
}

// TestGoldenChat renders the chat's states: no running server, the list
// and picker, a conversation whose replies ended done, error and canceled,
// a timeout named after a form sent without script, a conversation whose
// model stopped running, and a rejected form.
func TestGoldenChat(t *testing.T) {
	// The clock moves a minute per conversation, so that the list's order
	// (newest first) is the order below, not the random ids'.
	var mu sync.Mutex
	clock := goldenNow.Add(-time.Hour)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tick := func() { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Minute) }
	e := newEnv(t, now, withGateway)
	empty := newChatUser(e, "dana")
	ec := e.client()
	e.login(ec, empty.token)

	cu := newChatUser(e, "carol")
	c := e.client()
	csrf := e.login(c, cu.token)
	bot := cu.serve("support-bot", fakeopenai.Echo, "running")
	hang := cu.serve("storyteller", fakeopenai.Hang, "running")
	broken := cu.serve("flaky-7b", fakeopenai.ErrorData, "running")
	silent := cu.serve("sleepy-70b", fakeopenai.Silent, "running")
	gone := cu.serve("retired-13b", fakeopenai.Echo, "stopped")

	stopped := cu.conversation(gone, "Old chat")
	tick()
	main := cu.conversation(bot, "")
	cu.say(main, "What is a <b>token</b>?\nKeep it short.", keepAll{})
	tick()
	cu.say(main, "Thanks", keepAll{})
	tick()
	cut := cu.conversation(hang, "A long story")
	cu.say(cut, "Tell me a story", leaveAfterFirst{})
	tick()
	fail := cu.conversation(broken, "")
	cu.say(fail, "Summarise this", keepAll{})
	tick()
	slow := cu.conversation(silent, "")
	cu.say(slow, "Anyone there?", keepAll{})

	tests := []struct {
		name   string
		client *http.Client
		path   string
		form   url.Values
		status int
	}{
		{"chat-no-server", ec, "/chat", nil, 200},
		{"chat", c, "/chat", nil, 200},
		{"chat-conversation", c, "/chat/" + main.ID, nil, 200},
		{"chat-canceled", c, "/chat/" + cut.ID, nil, 200},
		{"chat-error", c, "/chat/" + fail.ID + "?error=bad_gateway", nil, 200},
		{"chat-timeout", c, "/chat/" + slow.ID + "?error=gateway_timeout", nil, 200},
		{"chat-stopped", c, "/chat/" + stopped.ID, nil, 200},
		{"chat-invalid", c, "/chat", url.Values{"model_id": {"mdl_nope0000000000000000"}, "title": {"x"}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r resp
			if tt.form != nil {
				tt.form.Set("csrf", csrf)
				r = e.post(c, tt.path, tt.form)
			} else {
				r = e.get(tt.client, tt.path)
			}
			if r.status != tt.status {
				t.Fatalf("%s: status %d, want %d:\n%s", tt.path, r.status, tt.status, r.body)
			}
			checkGolden(t, tt.name, r.body)
		})
	}
}

// TestChatForm: the conversation works without script (POST, then the
// reply once it is over) and with it (the same POST asking for events).
func TestChatForm(t *testing.T) {
	e := newEnv(t, time.Now, withGateway)
	cu := newChatUser(e, "erin")
	c := e.client()
	csrf := e.login(c, cu.token)
	bot := cu.serve("bot", fakeopenai.Echo, "running")
	flaky := cu.serve("flaky", fakeopenai.ErrorLine, "running")
	off := cu.serve("off", fakeopenai.Echo, "stopped")

	r := e.post(c, "/chat", url.Values{"csrf": {csrf}, "model_id": {bot.ID}})
	loc := r.header.Get("Location")
	if r.status != 303 || !strings.HasPrefix(loc, "/chat/cnv_") {
		t.Fatalf("create: %d %q", r.status, loc)
	}
	// Without script: the POST answers when the reply is stored.
	r = e.post(c, loc+"/messages", url.Values{"csrf": {csrf}, "content": {"hi there"}})
	if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), loc+"#m-msg_") {
		t.Fatalf("send without script: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	page := e.get(c, loc)
	if !strings.Contains(page.body, `<div class="msg-body">You said: hi there</div>`) || !strings.Contains(page.body, `data-status="done"`) {
		t.Errorf("the reply is not on the page:\n%s", page.body)
	}
	// With script: the same POST, asking for events.
	r = e.post(c, loc+"/messages", url.Values{"csrf": {csrf}, "content": {"again"}}, "Accept", "text/event-stream")
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" || r.header.Get("Content-Security-Policy") == "" ||
		!strings.Contains(r.body, `data: {"delta":"You"}`) || !strings.Contains(r.body, `"done":true`) {
		t.Fatalf("send with script: %d %v\n%s", r.status, r.header, r.body)
	}
	// A failing upstream: the redirect names the failure, the page says it.
	fr := e.post(c, "/chat", url.Values{"csrf": {csrf}, "model_id": {flaky.ID}})
	r = e.post(c, fr.header.Get("Location")+"/messages", url.Values{"csrf": {csrf}, "content": {"hi"}})
	if r.status != 303 || !strings.Contains(r.header.Get("Location"), "?error=bad_gateway#m-msg_") {
		t.Fatalf("failing upstream: %d %q", r.status, r.header.Get("Location"))
	}
	// Errors before anything is stored keep what was typed.
	r = e.post(c, loc+"/messages", url.Values{"csrf": {csrf}, "content": {"   "}})
	if r.status != 400 || !strings.Contains(r.body, "Content must not be empty") {
		t.Errorf("blank message: %d\n%s", r.status, r.body)
	}
	or := e.post(c, "/chat", url.Values{"csrf": {csrf}, "model_id": {off.ID}})
	r = e.post(c, or.header.Get("Location")+"/messages", url.Values{"csrf": {csrf}, "content": {"still there?"}})
	if r.status != 503 || !strings.Contains(r.body, "still there?") {
		t.Errorf("no server: %d\n%s", r.status, r.body)
	}
	r = e.post(c, or.header.Get("Location")+"/messages", url.Values{"csrf": {csrf}, "content": {"x"}}, "Accept", "text/event-stream")
	if r.status != 503 || !strings.Contains(r.body, `"code":"unavailable"`) {
		t.Errorf("no server, with script: %d %s", r.status, r.body)
	}
	if r := e.post(c, loc+"/messages", url.Values{"csrf": {"wrong"}, "content": {"x"}}); r.status != 403 {
		t.Errorf("wrong csrf: %d", r.status)
	}
	// Another user's conversation is not found; delete goes back to /chat.
	other := newChatUser(e, "frank")
	oc := e.client()
	ocsrf := e.login(oc, other.token)
	if r := e.get(oc, loc); r.status != 404 {
		t.Errorf("frank reads erin's conversation: %d", r.status)
	}
	if r := e.post(oc, loc+"/delete", url.Values{"csrf": {ocsrf}}); r.status != 404 {
		t.Errorf("frank deletes erin's conversation: %d", r.status)
	}
	if r := e.post(c, loc+"/delete", url.Values{"csrf": {csrf}}); r.status != 303 || r.header.Get("Location") != "/chat" {
		t.Errorf("delete: %d %q", r.status, r.header.Get("Location"))
	}
	if r := e.get(c, loc); r.status != 404 {
		t.Errorf("deleted conversation: %d", r.status)
	}
}
