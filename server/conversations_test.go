package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/fakeopenai"
	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/service"
)

type conversation struct {
	modellab.Conversation
	Messages []modellab.Message `json:"messages"`
}

func (l *chatLab) conversation(modelID, title string) modellab.Conversation {
	l.e.t.Helper()
	var c modellab.Conversation
	r := l.e.must(201, "POST", "/api/conversations", l.token, map[string]any{"model_id": modelID, "title": title})
	r.json(l.e.t, &c)
	if r.header.Get("Location") != "/api/conversations/"+c.ID {
		l.e.t.Errorf("Location = %q", r.header.Get("Location"))
	}
	return c
}

func (l *chatLab) get(id string) conversation {
	l.e.t.Helper()
	var c conversation
	l.e.must(200, "GET", "/api/conversations/"+id, l.token, nil).json(l.e.t, &c)
	return c
}

// streamEvent is one event of a message stream, decoded loosely.
type streamEvent struct {
	Delta string                 `json:"delta"`
	Done  bool                   `json:"done"`
	Msg   *modellab.Message      `json:"message"`
	Error *service.ChatErrorBody `json:"error"`
}

// send posts a message and returns the response (the caller reads it).
func (l *chatLab) send(ctx context.Context, id, content string) *http.Response {
	l.e.t.Helper()
	req, err := testenv.NewRequest("POST", l.e.url+"/api/conversations/"+id+"/messages", l.token, map[string]any{"content": content})
	if err != nil {
		l.e.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		l.e.t.Fatal(err)
	}
	return res
}

// readEvents reads a message stream to its end, strictly.
func readEvents(t *testing.T, r io.Reader) []streamEvent {
	t.Helper()
	var out []streamEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		var ev streamEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		out = append(out, ev)
	}
	return out
}

func TestConversations(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testConversations(t, newChatLab(t, envOpts{engine: engine}))
		})
	}
}

func testConversations(t *testing.T, lab *chatLab) {
	e := lab.e
	m, _ := lab.serve("bot", fakeopenai.Echo)
	a := lab.conversation(m.ID, "")
	b := lab.conversation(m.ID, "  Planning  ")
	if b.Title != "Planning" || a.Title != "" || a.ModelID != m.ID {
		t.Errorf("created %+v and %+v", a, b)
	}
	var list service.ConversationList
	e.must(200, "GET", "/api/conversations", lab.token, nil).json(t, &list)
	if len(list.Conversations) != 2 || list.Conversations[0].ID != b.ID {
		t.Fatalf("list %+v, want b then a", list.Conversations)
	}
	if r := e.must(200, "GET", "/api/conversations", lab.token, nil); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("second list: X-Cache %q", r.header.Get("X-Cache"))
	}

	// A message streams its reply, which is stored, and names the
	// untitled conversation.
	res := lab.send(context.Background(), a.ID, "hello there")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("send: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events := readEvents(t, res.Body)
	res.Body.Close()
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		text.WriteString(ev.Delta)
	}
	last := events[len(events)-1]
	if text.String() != "You said: hello there" || !last.Done || last.Msg == nil || last.Msg.Status != modellab.MessageDone || last.Msg.Content != text.String() {
		t.Fatalf("events %+v", events)
	}
	got := lab.get(a.ID)
	if got.Title != "hello there" || len(got.Messages) != 2 || got.Messages[0].Content != "hello there" ||
		got.Messages[1] != *last.Msg || got.Messages[0].Role != "user" || got.Messages[1].Role != "assistant" {
		t.Fatalf("stored %+v", got)
	}
	// The list shows the new title at once.
	e.must(200, "GET", "/api/conversations", lab.token, nil).json(t, &list)
	if list.Conversations[1].Title != "hello there" {
		t.Errorf("list after the first message: %+v", list.Conversations)
	}
	// The second turn sends the history along.
	res = lab.send(context.Background(), a.ID, "and again")
	readEvents(t, res.Body)
	res.Body.Close()
	reqs := lab.up.Requests()
	if h := reqs[len(reqs)-1].Messages; len(h) != 3 || h[1].Role != "assistant" || h[1].Content != "You said: hello there" {
		t.Errorf("history sent upstream: %+v", h)
	}

	checkConversationRules(t, lab, a.ID, m.ID)

	e.must(204, "DELETE", "/api/conversations/"+b.ID, lab.token, nil)
	e.must(404, "GET", "/api/conversations/"+b.ID, lab.token, nil)
	e.must(200, "GET", "/api/conversations", lab.token, nil).json(t, &list)
	if len(list.Conversations) != 1 || list.Conversations[0].ID != a.ID {
		t.Errorf("list after delete %+v", list.Conversations)
	}
}

// checkConversationRules: another user's conversation does not exist for
// them, and bad input is refused.
func checkConversationRules(t *testing.T, lab *chatLab, a, modelID string) {
	e := lab.e
	bob, _ := e.user("bob")
	e.must(404, "GET", "/api/conversations/"+a, bob, nil)
	e.must(404, "DELETE", "/api/conversations/"+a, bob, nil)
	e.must(404, "POST", "/api/conversations/"+a+"/messages", bob, map[string]any{"content": "hi"})
	e.must(400, "POST", "/api/conversations", bob, map[string]any{"model_id": modelID}) // alice's private model
	e.must(400, "POST", "/api/conversations", lab.token, map[string]any{})
	e.must(400, "POST", "/api/conversations/"+a+"/messages", lab.token, map[string]any{"content": "  "})
	e.must(400, "POST", "/api/conversations/"+a+"/messages", lab.token, map[string]any{"content": "x", "extra": 1})
	e.must(401, "GET", "/api/conversations", "", nil)
	var bl service.ConversationList
	e.must(200, "GET", "/api/conversations", bob, nil).json(t, &bl)
	if len(bl.Conversations) != 0 {
		t.Errorf("bob's list %+v", bl)
	}
}

// TestMessageStreamCutShort: a reply whose reader leaves ends canceled, one
// whose upstream fails ends error, both with what had arrived, and the
// upstream request is canceled within a second of the reader leaving.
func TestMessageStreamCutShort(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	e := lab.e
	hang, _ := lab.serve("hang", fakeopenai.Hang)
	broken, _ := lab.serve("broken", fakeopenai.ErrorData)
	die, _ := lab.serve("die", fakeopenai.Die)
	stopped, _ := lab.serve("stopped", fakeopenai.Echo, "stopped")

	c := lab.conversation(hang.ID, "")
	ctx, cancel := context.WithCancel(context.Background())
	res := lab.send(ctx, c.ID, "tell me a story")
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, `"delta":"Hel"`) {
		t.Fatalf("first event %q %v", line, err)
	}
	left := time.Now()
	cancel()
	res.Body.Close()
	at, ok := lab.up.WaitCanceled(5 * time.Second)
	if !ok || at.Sub(left) > time.Second {
		t.Fatalf("upstream canceled: %v after %v, want within 1s", ok, at.Sub(left))
	}
	waitFor(t, 5*time.Second, func() bool {
		ms := lab.get(c.ID).Messages
		return len(ms) == 2 && ms[1].Status == modellab.MessageCanceled
	})
	if ms := lab.get(c.ID).Messages; ms[1].Content != "Hel" {
		t.Errorf("canceled reply stored as %q, want the part received", ms[1].Content)
	}

	for _, m := range []modellab.Model{broken, die} {
		c := lab.conversation(m.ID, "")
		res := lab.send(context.Background(), c.ID, "hello")
		events := readEvents(t, res.Body)
		res.Body.Close()
		n := len(events)
		if n < 3 || events[n-2].Error == nil || events[n-2].Error.Code != "bad_gateway" || !events[n-1].Done ||
			events[n-1].Msg.Status != modellab.MessageError || events[n-1].Msg.Content != "You said" {
			t.Fatalf("%s: events %+v", m.Name, events)
		}
		if ms := lab.get(c.ID).Messages; ms[1].Status != modellab.MessageError || ms[1].Content != "You said" {
			t.Errorf("%s: stored %+v", m.Name, ms[1])
		}
	}

	// Nothing runs the model: 503 before anything is stored.
	c = lab.conversation(stopped.ID, "")
	r := e.must(503, "POST", "/api/conversations/"+c.ID+"/messages", lab.token, map[string]any{"content": "hi"})
	if r.errorCode(t) != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("no server: %s", r.body)
	}
	if ms := lab.get(c.ID).Messages; len(ms) != 0 {
		t.Errorf("messages stored without a server: %+v", ms)
	}
}

// TestAbandonedReplySettles: a reply whose serve process died mid-stream
// is left "streaming" in the database with nobody to finish it. Once it
// has gone unwritten for longer than a live writer ever leaves it, reading
// the conversation reports it as error, keeps its text, and stores that;
// a reply written recently stays streaming.
func TestAbandonedReplySettles(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	m, _ := lab.serve("bot", fakeopenai.Echo)
	dead := lab.conversation(m.ID, "")
	live := lab.conversation(m.ID, "")
	old := time.Now().Add(-2 * (gateway.DefaultFirstByteTimeout + time.Minute))
	turn := func(at time.Time) []modellab.Message {
		return []modellab.Message{
			{Role: modellab.RoleUser, Content: "hello", Status: modellab.MessageDone, CreatedAt: at},
			{Role: modellab.RoleAssistant, Content: "You sa", Status: modellab.MessageStreaming, CreatedAt: at},
		}
	}
	ctx := context.Background()
	if err := lab.e.db.AddMessages(ctx, dead.ID, turn(old), ""); err != nil {
		t.Fatal(err)
	}
	if err := lab.e.db.AddMessages(ctx, live.ID, turn(time.Now()), ""); err != nil {
		t.Fatal(err)
	}
	if ms := lab.get(dead.ID).Messages; len(ms) != 2 || ms[1].Status != modellab.MessageError || ms[1].Content != "You sa" {
		t.Fatalf("abandoned reply read as %+v, want error with its text", ms)
	}
	stored, err := lab.e.db.ListMessages(ctx, dead.ID)
	if err != nil || stored[1].Status != modellab.MessageError {
		t.Errorf("abandoned reply stored as %+v (%v), want error", stored, err)
	}
	if ms := lab.get(live.ID).Messages; ms[1].Status != modellab.MessageStreaming {
		t.Errorf("a reply written just now read as %q, want streaming", ms[1].Status)
	}
}
