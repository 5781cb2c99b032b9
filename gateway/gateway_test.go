package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/gateway"
	"github.com/modellab/modellab/internal/fakeopenai"
)

func newGateway(cfg gateway.Config) *gateway.Gateway {
	cfg.Logger = slog.New(slog.DiscardHandler)
	return gateway.New(cfg)
}

// body is a chat request for model with one user message.
func body(t *testing.T, model string, stream bool) []byte {
	t.Helper()
	c, err := gateway.NewCall("ignored", []map[string]string{{"role": "user", "content": "hello there"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Stream = stream
	b, err := c.Body(model)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readStream reads a response to its end and returns the text, the
// number of chunks and the error that ended it (nil at a clean end).
func readStream(res *gateway.Response) (string, int, error) {
	var b strings.Builder
	n := 0
	for {
		data, err := res.Next()
		if errors.Is(err, io.EOF) {
			return b.String(), n, nil
		}
		if err != nil {
			return b.String(), n, err
		}
		n++
		b.WriteString(gateway.DeltaText(data))
	}
}

func TestStreamDialects(t *testing.T) {
	up := fakeopenai.New(t)
	g := newGateway(gateway.Config{})
	for _, tt := range []struct {
		model     string
		hideUsage bool
		wantErr   string // a substring of the error; "" for a clean end
		wantText  string
	}{
		{fakeopenai.Echo, true, "", "You said: hello there"},
		{fakeopenai.Echo, false, "", "You said: hello there"},
		{fakeopenai.Dialects, true, "", "You said: hello there"},
		{fakeopenai.NoDone, true, "", "You said: hello there"},
		{fakeopenai.Truncated, true, "before the reply was over", "You said"},
		{fakeopenai.ErrorData, true, "ran out of memory", "You said"},
		{fakeopenai.ErrorLine, true, "llama_decode failed", "You said"},
		{fakeopenai.ErrorEvent, true, "the worker crashed", "You said"},
		{fakeopenai.Die, true, "broke off", "You said"},
		{fakeopenai.NotJSON, true, "not JSON", "You"},
	} {
		t.Run(tt.model, func(t *testing.T) {
			res, err := g.Send(context.Background(), gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()},
				Body: body(t, tt.model, true), Stream: true, HideUsage: tt.hideUsage})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			defer res.Close()
			if !res.IsStream() || res.Status != 200 {
				t.Fatalf("status %d, stream %v", res.Status, res.IsStream())
			}
			text, chunks, err := readStream(res)
			if text != tt.wantText {
				t.Errorf("text = %q, want %q", text, tt.wantText)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("stream ended with %v", err)
			case tt.wantErr != "" && (modellab.ErrorCode(err) != modellab.EBADGATEWAY || !strings.Contains(modellab.ErrorMessage(err), tt.wantErr)):
				t.Fatalf("stream ended with %v, want bad_gateway with %q", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				return
			}
			u, ok := res.Usage()
			if !ok || u.PromptTokens != 2 || u.CompletionTokens != 4 {
				t.Errorf("usage = %+v, %v; want 2 prompt and 4 completion tokens", u, ok)
			}
			// The usage-only chunk is relayed only when asked for.
			if want := 5 + boolInt(!tt.hideUsage); chunks != want {
				t.Errorf("%d chunks, want %d", chunks, want)
			}
		})
	}
	for _, r := range up.Requests() {
		if !r.IncludeUsage || !r.Stream {
			t.Errorf("upstream got stream %v include_usage %v, want both", r.Stream, r.IncludeUsage)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestWhole(t *testing.T) {
	up := fakeopenai.New(t)
	g := newGateway(gateway.Config{})
	send := func(model string) (*gateway.Response, error) {
		return g.Send(context.Background(), gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()}, Body: body(t, model, false)})
	}
	res, err := send(fakeopenai.Echo)
	if err != nil {
		t.Fatal(err)
	}
	b, err := res.ReadAll()
	res.Close()
	if err != nil || !strings.Contains(string(b), "You said: hello there") {
		t.Fatalf("ReadAll = %s, %v", b, err)
	}
	if u, ok := res.Usage(); !ok || u.CompletionTokens != 4 {
		t.Errorf("usage %+v %v", u, ok)
	}
	// A 4xx is the upstream's answer to relay, not a gateway failure.
	res, err = send(fakeopenai.Status400)
	if err != nil {
		t.Fatal(err)
	}
	b, err = res.ReadAll()
	res.Close()
	if err != nil || res.Status != 400 || !strings.Contains(string(b), "maximum context length") {
		t.Fatalf("400: status %d body %s err %v", res.Status, b, err)
	}
	// A 200 that is not JSON is a bad gateway.
	res, err = send(fakeopenai.NotJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.ReadAll(); modellab.ErrorCode(err) != modellab.EBADGATEWAY {
		t.Errorf("not JSON: %v, want bad_gateway", err)
	}
	res.Close()
	// A 5xx never reaches the caller as a response.
	if _, err := send(fakeopenai.Status500); modellab.ErrorCode(err) != modellab.EBADGATEWAY || !strings.Contains(err.Error(), "CUDA out of memory") {
		t.Errorf("500: %v, want bad_gateway with the upstream's message", err)
	}
}

// closedEndpoint is a base URL on which nothing listens.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/v1"
}

func TestRoundRobinAndPenalty(t *testing.T) {
	a, b := fakeopenai.New(t), fakeopenai.New(t)
	now := time.Unix(1000, 0)
	g := newGateway(gateway.Config{Penalty: 10 * time.Second, Now: func() time.Time { return now }})
	send := func(eps ...string) error {
		res, err := g.Send(context.Background(), gateway.Request{Key: "user/model", Endpoints: eps, Body: body(t, fakeopenai.Echo, false)})
		if err == nil {
			_, err = res.ReadAll()
			res.Close()
		}
		return err
	}
	for i := 0; i < 6; i++ {
		if err := send(a.BaseURL(), b.BaseURL()); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb := len(a.Requests()), len(b.Requests()); na != 3 || nb != 3 {
		t.Fatalf("round robin: %d and %d requests, want 3 and 3", na, nb)
	}

	// A refused connection moves on to the next endpoint at once, and
	// the refusing one is passed over until its penalty is served.
	dead := closedEndpoint(t)
	for i := 0; i < 4; i++ {
		if err := send(dead, a.BaseURL()); err != nil {
			t.Fatalf("request %d with one dead endpoint: %v", i, err)
		}
	}
	if n := len(a.Requests()); n != 7 {
		t.Errorf("the live endpoint served %d requests in all, want 7", n)
	}
	// Only the dead endpoint: 502, not a hang and not a 503.
	if err := send(dead); modellab.ErrorCode(err) != modellab.EBADGATEWAY || !strings.Contains(err.Error(), "could not connect") {
		t.Errorf("dead endpoint alone: %v, want bad_gateway", err)
	}
	if err := send(); modellab.ErrorCode(err) != modellab.EUNAVAILABLE {
		t.Errorf("no endpoint: %v, want unavailable", err)
	}
	// An endpoint that is not a URL is passed over like a refusing one.
	now = now.Add(time.Minute)
	if err := send("not a url", a.BaseURL()); err != nil {
		t.Errorf("a malformed endpoint is skipped like a refusing one: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	up := fakeopenai.New(t)
	g := newGateway(gateway.Config{FirstByteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := g.Send(context.Background(), gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()}, Body: body(t, fakeopenai.Silent, true), Stream: true})
	if modellab.ErrorCode(err) != modellab.EGATEWAYTIMEOUT {
		t.Fatalf("silent server: %v, want gateway_timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the first byte timeout of 300ms took %v", d)
	}
	if _, ok := up.WaitCanceled(5 * time.Second); !ok {
		t.Errorf("the silent server's request was not canceled after the timeout")
	}

	res, err := g.Send(context.Background(), gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()}, Body: body(t, fakeopenai.SilentAfterFirst, true), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	text, _, err := readStream(res)
	if text != "You" || modellab.ErrorCode(err) != modellab.EGATEWAYTIMEOUT || !strings.Contains(err.Error(), "silent") {
		t.Fatalf("silent stream: text %q err %v, want the first chunk then gateway_timeout", text, err)
	}

	// A slow server that keeps sending is not timed out, however long it
	// takes in all.
	up.Delay = 100 * time.Millisecond
	res, err = g.Send(context.Background(), gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()}, Body: body(t, fakeopenai.Slow, true), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if text, _, err := readStream(res); err != nil || text != "You said: hello there" {
		t.Fatalf("slow stream: %q %v", text, err)
	}
}

func TestClientLeavesCancelsUpstream(t *testing.T) {
	up := fakeopenai.New(t)
	g := newGateway(gateway.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	res, err := g.Send(ctx, gateway.Request{Key: "k", Endpoints: []string{up.BaseURL()}, Body: body(t, fakeopenai.Hang, true), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if data, err := res.Next(); err != nil || gateway.DeltaText(data) != "Hel" {
		t.Fatalf("first chunk: %s %v", data, err)
	}
	left := time.Now()
	cancel()
	if _, err := res.Next(); err == nil {
		t.Fatalf("the stream went on after its context was canceled")
	}
	at, ok := up.WaitCanceled(5 * time.Second)
	if !ok {
		t.Fatalf("the upstream never saw its client leave")
	}
	if d := at.Sub(left); d > time.Second {
		t.Errorf("the upstream request was canceled %v after the client left, want within 1s", d)
	}
}

func TestParseCall(t *testing.T) {
	for _, tt := range []struct {
		body, field string
	}{
		{`[]`, ""},
		{`nope`, ""},
		{`{}`, "model"},
		{`{"model": ""}`, "model"},
		{`{"model": 3}`, "model"},
		{`{"model": "m", "stream": "yes"}`, "stream"},
		{`{"model": "m", "stream_options": 1}`, "stream_options"},
	} {
		_, err := gateway.ParseCall([]byte(tt.body))
		if modellab.ErrorCode(err) != modellab.EINVALID || modellab.ErrorField(err) != tt.field {
			t.Errorf("ParseCall(%s): %v (field %q), want invalid_argument on %q", tt.body, err, modellab.ErrorField(err), tt.field)
		}
	}
	c, err := gateway.ParseCall([]byte(`{"model": "mine", "stream": true, "stream_options": {"x": 1}, "temperature": 0.2, "messages": [{"role": "user", "content": "hi"}], "vendor_thing": {"a": [1, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "mine" || !c.Stream || c.WantsUsage {
		t.Errorf("parsed %+v", c)
	}
	b, err := c.Body("upstream-name")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	so, _ := got["stream_options"].(map[string]any)
	if got["model"] != "upstream-name" || got["temperature"] != 0.2 || got["vendor_thing"] == nil || so["include_usage"] != true || so["x"] != 1.0 {
		t.Errorf("rewritten body %s", b)
	}
}
