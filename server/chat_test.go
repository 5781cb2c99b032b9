package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/fakeopenai"
	"github.com/modellab/modellab/internal/testenv"
)

// chatLab is a user with models served by a fake inference server.
type chatLab struct {
	e     *env
	up    *fakeopenai.Server
	token string
	uid   string
}

func newChatLab(t *testing.T, o envOpts) *chatLab {
	t.Helper()
	e := newEnv(t, o)
	lab := &chatLab{e: e, up: fakeopenai.New(t)}
	lab.token, lab.uid = e.user("alice")
	return lab
}

// serve registers a model whose base model is the fake's behaviour, and a
// server running it (status running unless given).
func (l *chatLab) serve(name, behaviour string, status ...string) (modellab.Model, modellab.Server) {
	l.e.t.Helper()
	m := l.e.model(l.token, map[string]any{"name": name, "provider": "local", "base_model": behaviour})
	st := "running"
	if len(status) > 0 {
		st = status[0]
	}
	var sv modellab.Server
	l.e.must(201, "POST", "/api/servers", l.token, map[string]any{"name": "srv-" + name, "model_id": m.ID,
		"status": st, "endpoint": l.up.BaseURL()}).json(l.e.t, &sv)
	return m, sv
}

// quietGateway is a gateway that logs nowhere.
func quietGateway(cfg gateway.Config) *gateway.Gateway {
	cfg.Logger = slog.New(slog.DiscardHandler)
	return gateway.New(cfg)
}

func (l *chatLab) client(retries int) openai.Client {
	return openai.NewClient(option.WithBaseURL(l.e.url+"/v1/"), option.WithAPIKey(l.token), option.WithMaxRetries(retries))
}

// usage returns the analytics totals of the lab's user around now, once
// the recorded events are written.
func (l *chatLab) usage() modellab.AnalyticsTotals {
	l.e.t.Helper()
	ctx := context.Background()
	if err := l.e.svc.FlushUsage(ctx); err != nil {
		l.e.t.Fatal(err)
	}
	now := time.Now().UTC()
	res, err := l.e.db.Analytics(ctx, l.uid, modellab.AnalyticsQuery{From: now.Add(-time.Hour), To: now.Add(time.Hour), Interval: modellab.IntervalHour})
	if err != nil {
		l.e.t.Fatal(err)
	}
	return res.Totals
}

// waitUsage waits for the recorded usage to count requests completions
// (a stream's event is recorded when its handler returns, which may be
// just after the client read the last byte) and returns the totals.
func (l *chatLab) waitUsage(requests int64) modellab.AnalyticsTotals {
	l.e.t.Helper()
	var u modellab.AnalyticsTotals
	deadline := time.Now().Add(10 * time.Second)
	for u = l.usage(); u.Requests < requests && time.Now().Before(deadline); u = l.usage() {
		time.Sleep(20 * time.Millisecond)
	}
	return u
}

func userMessage(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

// TestChatOpenAISDK drives the gateway with the official OpenAI Go
// library, which no one here wrote: plain and streamed completions and the
// model list must work with it unchanged.
func TestChatOpenAISDK(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	m, _ := lab.serve("support-bot", fakeopenai.Echo)
	lab.serve("echo", "") // no base model: its name goes upstream
	ctx := context.Background()
	client := lab.client(0)

	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatalf("Models.List: %v", err)
	}
	var ids []string
	for _, pm := range page.Data {
		ids = append(ids, pm.ID)
		if pm.Object != "model" || pm.OwnedBy != "local" || pm.Created == 0 {
			t.Errorf("model %+v", pm)
		}
	}
	if want := []string{"echo", "support-bot"}; !slices.Equal(ids, want) {
		t.Errorf("Models.List = %v, want %v", ids, want)
	}

	for _, model := range []string{"support-bot", m.ID, "echo"} {
		p := userMessage("hi there")
		p.Model = model
		res, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatalf("New(%s): %v", model, err)
		}
		if got := res.Choices[0].Message.Content; got != "You said: hi there" {
			t.Errorf("New(%s) = %q", model, got)
		}
		if res.Usage.CompletionTokens != 4 || res.Usage.PromptTokens != 2 {
			t.Errorf("usage %+v", res.Usage)
		}
	}
	for _, includeUsage := range []bool{false, true} {
		text, usage := sdkStream(t, client, includeUsage)
		if text != "You said: stream this please" {
			t.Errorf("streamed %q", text)
		}
		if includeUsage != (usage == 5) {
			t.Errorf("include_usage %v: usage chunk said %d completion tokens", includeUsage, usage)
		}
	}
	// The upstream saw the model it serves, and was always asked for usage.
	var models []string
	for _, r := range lab.up.Requests() {
		models = append(models, r.Model)
		if r.Stream && !r.IncludeUsage {
			t.Errorf("a stream was sent without include_usage")
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the caller's token was sent upstream")
		}
	}
	if want := []string{"echo", "echo", "echo", "echo", "echo"}; !slices.Equal(models, want) {
		t.Errorf("upstream models = %v, want %v", models, want)
	}
	// One analytics event per completion, with the upstream's usage.
	u := lab.waitUsage(5)
	if u.Requests != 5 || u.Errors != 0 || u.OutputTokens != 4+4+4+5+5 || u.InputTokens != 2+2+2+3+3 {
		t.Errorf("recorded usage %+v, want 5 requests, 22 output and 12 input tokens", u)
	}
}

// sdkStream streams a completion with the OpenAI library and returns its
// text and the completion tokens of its usage chunk (0 without one).
func sdkStream(t *testing.T, client openai.Client, includeUsage bool) (string, int64) {
	t.Helper()
	p := userMessage("stream this please")
	p.Model = "support-bot"
	if includeUsage {
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), p)
	var text strings.Builder
	var usage int64
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
		if c.JSON.Usage.Valid() && c.Usage.CompletionTokens > 0 {
			usage = c.Usage.CompletionTokens
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream (include_usage %v): %v", includeUsage, err)
	}
	return text.String(), usage
}

// rawStream posts a streamed completion and returns the response.
func (l *chatLab) rawStream(ctx context.Context, model string) *http.Response {
	l.e.t.Helper()
	req, err := testenv.NewRequest("POST", l.e.url+"/v1/chat/completions", l.token,
		map[string]any{"model": model, "stream": true, "messages": []map[string]string{{"role": "user", "content": "hello there"}}})
	if err != nil {
		l.e.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		l.e.t.Fatal(err)
	}
	return res
}

func TestChatErrors(t *testing.T) {
	lab := newChatLab(t, envOpts{gateway: quietGateway(gateway.Config{FirstByteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})})
	e := lab.e
	for _, b := range []string{fakeopenai.Status500, fakeopenai.Status400, fakeopenai.Silent, fakeopenai.NotJSON} {
		lab.serve(b, b)
	}
	lab.serve("stopped", fakeopenai.Echo, "stopped")
	dead := e.model(lab.token, map[string]any{"name": "dead", "provider": "local"})
	e.must(201, "POST", "/api/servers", lab.token, map[string]any{"name": "dead-1", "model_id": dead.ID, "status": "running", "endpoint": "http://127.0.0.1:1/v1"})
	bob, _ := e.user("bob")
	body := func(model string) map[string]any {
		return map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	}
	for _, tt := range []struct {
		name, token string
		body        any
		status      int
		code, typ   string
	}{
		{"no token", "", body("echo"), 401, "unauthorized", "authentication_error"},
		{"malformed", lab.token, `{"model": `, 400, "invalid_argument", "invalid_request_error"},
		{"no model", lab.token, map[string]any{"messages": []any{}}, 400, "invalid_argument", "invalid_request_error"},
		{"unknown model", lab.token, body("nope"), 404, "not_found", "invalid_request_error"},
		{"another user's model", bob, body(fakeopenai.Status500), 404, "not_found", "invalid_request_error"},
		{"no running server", lab.token, body("stopped"), 503, "unavailable", "server_error"},
		{"upstream 500", lab.token, body(fakeopenai.Status500), 502, "bad_gateway", "server_error"},
		{"upstream refuses", lab.token, body("dead"), 502, "bad_gateway", "server_error"},
		{"upstream silent", lab.token, body(fakeopenai.Silent), 504, "gateway_timeout", "server_error"},
		{"upstream not JSON", lab.token, body(fakeopenai.NotJSON), 502, "bad_gateway", "server_error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v1/chat/completions", tt.token, tt.body)
			var got struct {
				Error struct{ Code, Message, Type string } `json:"error"`
			}
			r.json(t, &got)
			if r.status != tt.status || got.Error.Code != tt.code || got.Error.Type != tt.typ || got.Error.Message == "" {
				t.Fatalf("status %d body %s; want %d %s %s", r.status, r.body, tt.status, tt.code, tt.typ)
			}
			if tt.status == 503 && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="modellab"`) {
				t.Errorf("401 with WWW-Authenticate %q, want the Bearer challenge", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	checkRelayedErrors(t, lab, body)
	// The failures that reached an upstream are recorded as errors; the
	// ones that never left (401, 400, 404, 503) are not completions.
	if u := lab.waitUsage(6); u.Requests != 6 || u.Errors != 6 {
		t.Errorf("recorded %d requests, %d errors; want 6 and 6 (500 twice, refused, silent, not JSON, 400)", u.Requests, u.Errors)
	}
}

// checkRelayedErrors: an upstream's 4xx is relayed as it came, the OpenAI
// library reads the gateway's errors as its own, and unknown /v1 paths
// and methods answer in the same shape.
func checkRelayedErrors(t *testing.T, lab *chatLab, body func(string) map[string]any) {
	e := lab.e
	r := e.do("POST", "/v1/chat/completions", lab.token, body(fakeopenai.Status400))
	if r.status != 400 || !strings.Contains(string(r.body), "maximum context length") {
		t.Errorf("upstream 400: %d %s", r.status, r.body)
	}
	// The OpenAI library reads these errors as its own.
	p := userMessage("hi")
	p.Model = fakeopenai.Status500
	client := lab.client(0)
	_, err := client.Chat.Completions.New(context.Background(), p)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || apiErr.Code != "bad_gateway" || apiErr.Type != "server_error" {
		t.Errorf("SDK error = %v, want a 502 openai.Error with code bad_gateway", err)
	}
	// Unknown /v1 paths and methods answer in the same shape.
	for _, c := range []struct{ method, path, allow string }{{"GET", "/v1/chat/completions", "POST"}, {"DELETE", "/v1/models", "GET, HEAD"}, {"GET", "/v1/nope", ""}} {
		r := e.do(c.method, c.path, lab.token, nil)
		want := 405
		if c.allow == "" {
			want = 404
		}
		if r.status != want || r.header.Get("Allow") != c.allow || !strings.Contains(string(r.body), `"type"`) {
			t.Errorf("%s %s: %d Allow %q %s", c.method, c.path, r.status, r.header.Get("Allow"), r.body)
		}
	}
}

// TestChatMidStreamErrors: an upstream that fails after the stream began
// gets a last data: event with an error object, then the stream ends (no
// [DONE]); the OpenAI library reports it as a stream error.
func TestChatMidStreamErrors(t *testing.T) {
	lab := newChatLab(t, envOpts{gateway: quietGateway(gateway.Config{IdleTimeout: 300 * time.Millisecond})})
	for _, tt := range []struct {
		behaviour, code string
	}{
		{fakeopenai.ErrorData, "bad_gateway"},
		{fakeopenai.ErrorLine, "bad_gateway"},
		{fakeopenai.ErrorEvent, "bad_gateway"},
		{fakeopenai.Die, "bad_gateway"},
		{fakeopenai.NotJSON, "bad_gateway"},
		{fakeopenai.SilentAfterFirst, "gateway_timeout"},
	} {
		t.Run(tt.behaviour, func(t *testing.T) {
			lab.serve(tt.behaviour, tt.behaviour)
			res := lab.rawStream(context.Background(), tt.behaviour)
			defer res.Body.Close()
			text, events, err := fakeopenai.ReadStream(res.Body)
			if err != nil {
				t.Fatalf("the relayed stream is not clean SSE: %v (events %q)", err, events)
			}
			if res.StatusCode != 200 || !strings.HasPrefix(text, "You") {
				t.Fatalf("status %d text %q", res.StatusCode, text)
			}
			last := events[len(events)-1]
			if !strings.Contains(last, `"error":{"code":"`+tt.code+`"`) || slices.Contains(events, "[DONE]") {
				t.Fatalf("events %q: want a last error event with code %s and no [DONE]", events, tt.code)
			}
			p := userMessage("hi")
			p.Model = tt.behaviour
			client := lab.client(0)
			stream := client.Chat.Completions.NewStreaming(context.Background(), p)
			for stream.Next() {
			}
			if err := stream.Err(); err == nil || !strings.Contains(err.Error(), tt.code) {
				t.Errorf("SDK stream error = %v, want one naming %s", err, tt.code)
			}
		})
	}
	if u := lab.waitUsage(12); u.Requests != 12 || u.Errors != 12 {
		t.Errorf("recorded %d requests, %d errors; want 12 and 12", u.Requests, u.Errors)
	}
}

// TestChatStreamRelay: events are relayed as they arrive, with the headers
// that keep proxies from buffering, past the server's read and write
// timeouts, and never from the cache.
func TestChatStreamRelay(t *testing.T) {
	lab := newChatLab(t, envOpts{httpTimeout: time.Second})
	lab.up.Delay = 400 * time.Millisecond // 4 chunks: 1.6 s, past both timeouts
	lab.serve("slow", fakeopenai.Slow)
	lab.serve("dialects", fakeopenai.Dialects)
	start := time.Now()
	res := lab.rawStream(context.Background(), "slow")
	defer res.Body.Close()
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if res.Header.Get("X-Cache") != "" {
		t.Errorf("a stream carries X-Cache %q", res.Header.Get("X-Cache"))
	}
	br := bufio.NewReader(res.Body)
	first, err := br.ReadString('\n')
	if err != nil || !strings.Contains(first, "You") {
		t.Fatalf("first line %q, %v", first, err)
	}
	if lab.up.Finished() != 0 {
		t.Errorf("the first chunk arrived only after the upstream had finished (%v)", time.Since(start))
	}
	text, events, err := fakeopenai.ReadStream(io.MultiReader(strings.NewReader(first), br))
	if err != nil || text != "You said: hello there" || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream %q %v: %q", text, err, events)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("the stream took %v: the upstream's delays were not relayed", d)
	}
	// Non-stream answers outlive the timeouts too.
	r := lab.e.do("POST", "/v1/chat/completions", lab.token, map[string]any{"model": "slow", "messages": []map[string]string{{"role": "user", "content": "hello there"}}})
	if r.status != 200 || !strings.Contains(string(r.body), "You said: hello there") {
		t.Errorf("slow whole answer: %d %s", r.status, r.body)
	}
	// The lenient reader turns a messy upstream into clean events.
	res2 := lab.rawStream(context.Background(), "dialects")
	defer res2.Body.Close()
	if text, events, err := fakeopenai.ReadStream(res2.Body); err != nil || text != "You said: hello there" || events[len(events)-1] != "[DONE]" {
		t.Errorf("dialects relayed as %q %v %q", text, err, events)
	}
	// A repeated stream goes upstream again: streams are never cached.
	before := lab.up.Started()
	res3 := lab.rawStream(context.Background(), "dialects")
	_, _, _ = fakeopenai.ReadStream(res3.Body)
	res3.Body.Close()
	if lab.up.Started() != before+1 {
		t.Errorf("a repeated stream did not reach the upstream")
	}
}

func TestChatClientLeavesCancelsUpstream(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	lab.serve("hang", fakeopenai.Hang)
	ctx, cancel := context.WithCancel(context.Background())
	res := lab.rawStream(ctx, "hang")
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "Hel") {
		t.Fatalf("first event %q %v", line, err)
	}
	left := time.Now()
	cancel()
	res.Body.Close()
	at, ok := lab.up.WaitCanceled(5 * time.Second)
	if !ok {
		t.Fatal("the upstream request was not canceled when the client left")
	}
	if d := at.Sub(left); d > time.Second {
		t.Errorf("the upstream request was canceled %v after the client left, want within 1s", d)
	}
	// A client that leaves is not an error of the model.
	if u := lab.waitUsage(1); u.Requests != 1 || u.Errors != 0 {
		t.Errorf("recorded %+v, want one ok request", u)
	}
	waitFor(t, 5*time.Second, func() bool {
		return lab.e.metric("modellab_http_requests_total", map[string]string{"method": "POST", "route": "/v1/chat/completions", "code": "200"}) == 1
	})
}

func TestChatRoutes(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	other := fakeopenai.New(t)
	m, sv := lab.serve("bot", fakeopenai.Echo)
	var sv2 modellab.Server
	lab.e.must(201, "POST", "/api/servers", lab.token, map[string]any{"name": "srv-bot-2", "model_id": m.ID, "status": "running", "endpoint": other.BaseURL()}).json(t, &sv2)
	send := func() {
		t.Helper()
		lab.e.must(200, "POST", "/v1/chat/completions", lab.token, map[string]any{"model": "bot", "messages": []map[string]string{{"role": "user", "content": "x"}}})
	}
	for i := 0; i < 6; i++ {
		send()
	}
	if a, b := len(lab.up.Requests()), len(other.Requests()); a != 3 || b != 3 {
		t.Errorf("round robin over two servers: %d and %d", a, b)
	}
	// A server that stops is out of the rotation at once.
	lab.e.must(200, "PATCH", "/api/servers/"+sv.ID, lab.token, map[string]any{"status": "stopped"})
	for i := 0; i < 3; i++ {
		send()
	}
	if a, b := len(lab.up.Requests()), len(other.Requests()); a != 3 || b != 6 {
		t.Errorf("after stopping one: %d and %d, want 3 and 6", a, b)
	}
	// Another user cannot reach alice's servers, even naming the model id.
	bob, _ := lab.e.user("bob")
	if r := lab.e.do("POST", "/v1/chat/completions", bob, map[string]any{"model": m.ID, "messages": []any{}}); r.status != 404 {
		t.Errorf("bob on alice's model: %d %s", r.status, r.body)
	}
}

func TestV1ModelsCache(t *testing.T) {
	lab := newChatLab(t, envOpts{})
	e := lab.e
	list := func(want ...string) resp {
		t.Helper()
		r := e.must(200, "GET", "/v1/models", lab.token, nil)
		var body struct {
			Object string `json:"object"`
			Data   []struct {
				ID, Object string
			} `json:"data"`
		}
		r.json(t, &body)
		var got []string
		for _, d := range body.Data {
			got = append(got, d.ID)
		}
		if body.Object != "list" || !slices.Equal(got, want) {
			t.Fatalf("GET /v1/models = %s %v, want %v", body.Object, got, want)
		}
		return r
	}
	list()
	_, sv := lab.serve("bot", fakeopenai.Echo)
	list("bot")
	if r := list("bot"); r.header.Get("X-Cache") != "HIT" || !strings.HasPrefix(r.header.Get("Cache-Control"), "private") {
		t.Errorf("second read: X-Cache %q Cache-Control %q", r.header.Get("X-Cache"), r.header.Get("Cache-Control"))
	}
	e.must(200, "PATCH", "/api/servers/"+sv.ID, lab.token, map[string]any{"status": "error"})
	list()
	e.must(200, "PATCH", "/api/servers/"+sv.ID, lab.token, map[string]any{"status": "running", "endpoint": ""})
	list() // running, but nowhere to send a request
	e.must(200, "PATCH", "/api/servers/"+sv.ID, lab.token, map[string]any{"endpoint": lab.up.BaseURL()})
	list("bot")
	// A global model run by alice: an admin's rename reaches her list.
	g := e.model(adminToken, map[string]any{"name": "global-one", "provider": "meta", "visibility": "global"})
	e.must(201, "POST", "/api/servers", lab.token, map[string]any{"name": "g", "model_id": g.ID, "status": "running", "endpoint": lab.up.BaseURL()})
	list("bot", "global-one")
	e.must(200, "PATCH", "/api/models/"+g.ID, adminToken, map[string]any{"name": "global-two"})
	list("bot", "global-two")
	e.must(204, "DELETE", "/api/models/"+g.ID, adminToken, nil)
	list("bot")
	e.must(401, "GET", "/v1/models", "", nil)
}
