// Package fakeopenai is a fake OpenAI-compatible inference server for the
// tests of the gateway and the chat: POST /v1/chat/completions, answered
// whole or streamed as server-sent events, in the dialects real servers
// speak. The model named in the request picks the behaviour (see the
// Model constants), so a test points a modellab model's base_model at the
// behaviour it wants and sees the gateway's rewrite at work too.
//
// It records every request it got, when a request's client left before
// the answer was over (the gateway must cancel upstream requests whose
// own client left), and how many streams it finished. Only tests import it.
package fakeopenai

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Behaviours, by model name.
const (
	// Echo replies "You said: <the last user message>", word by word.
	Echo = "echo"
	// Dialects is Echo written as llama.cpp and friends write streams:
	// ": ping" comments, empty data: frames, CRLF line ends, "data:"
	// without a space, and events split across writes.
	Dialects = "dialects"
	// ErrorData streams two chunks, then data: {"error": {...}}.
	ErrorData = "error-data"
	// ErrorLine streams two chunks, then llama.cpp's "error: {...}" line.
	ErrorLine = "error-line"
	// ErrorEvent streams two chunks, then "event: error".
	ErrorEvent = "error-event"
	// Status500 answers 500 with an OpenAI error body.
	Status500 = "status-500"
	// Status400 answers 400 (context too long) with an OpenAI error body.
	Status400 = "status-400"
	// NotJSON answers 200 with a body (or a chunk) that is not JSON.
	NotJSON = "not-json"
	// Silent never answers; it waits for its client to leave.
	Silent = "silent"
	// SilentAfterFirst sends one chunk, then nothing until its client
	// leaves.
	SilentAfterFirst = "silent-after-first"
	// Slow is Echo with Server.Delay between chunks (whole: before the
	// answer, once per chunk it would have sent).
	Slow = "slow"
	// Hang sends the chunk "Hel" (as content), then waits for its client
	// to leave: the reply a client cuts short.
	Hang = "hang"
	// Die sends two chunks, then drops the connection without a word: an
	// inference server killed mid-stream.
	Die = "die"
	// NoDone is Echo without the final [DONE], as some servers end a
	// stream: the last chunk's finish_reason says it is over.
	NoDone = "no-done"
	// Truncated sends two chunks, then ends its response cleanly, without
	// a finish_reason or [DONE]: a reply cut short.
	Truncated = "truncated"
	// Clock sends Server.Chunks chunks, Server.Delay apart, whose content
	// is the time.Now().UnixNano() at which each was written, to time the
	// gateway's relay.
	Clock = "clock"
)

// Request is what the fake received.
type Request struct {
	Model        string
	Stream       bool
	IncludeUsage bool
	Messages     []Message
	Header       http.Header
}

// Message is one message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Server is a running fake. Set Delay and Chunks before sending requests.
type Server struct {
	*httptest.Server
	// Delay is the pause between chunks of Slow and Clock (default 50 ms).
	Delay time.Duration
	// Chunks is how many chunks Clock sends (default 100).
	Chunks int

	mu       sync.Mutex
	reqs     []Request
	canceled chan time.Time
	finished atomic.Int64
	started  atomic.Int64
}

// New starts a fake on 127.0.0.1, closed when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := NewUnstarted()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// NewUnstarted makes a fake to be started by the caller (Start, or
// serving its Config on a listener of the caller's).
func NewUnstarted() *Server {
	s := &Server{Delay: 50 * time.Millisecond, Chunks: 100, canceled: make(chan time.Time, 4096)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handle)
	s.Server = httptest.NewUnstartedServer(mux)
	return s
}

// BaseURL is the endpoint to register: the server's URL plus /v1.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Started is how many completions the fake began to answer.
func (s *Server) Started() int64 { return s.started.Load() }

// Finished is how many completions the fake answered to their end.
func (s *Server) Finished() int64 { return s.finished.Load() }

// WaitCanceled returns when the next request whose client left was
// noticed, or false after timeout.
func (s *Server) WaitCanceled(timeout time.Duration) (time.Time, bool) {
	select {
	case at := <-s.canceled:
		return at, true
	case <-time.After(timeout):
		return time.Time{}, false
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var in struct {
		Model         string    `json:"model"`
		Stream        bool      `json:"stream"`
		Messages      []Message `json:"messages"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	req := Request{Model: in.Model, Stream: in.Stream, IncludeUsage: in.StreamOptions.IncludeUsage, Messages: in.Messages, Header: r.Header.Clone()}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	s.started.Add(1)
	a := &answer{s: s, w: w, r: r, req: req}
	if a.run() {
		s.finished.Add(1)
	}
}

// answer is one request being answered.
type answer struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	req Request
	n   int // content chunks sent
}

// run answers by behaviour; it reports whether it got to the end.
func (a *answer) run() bool {
	switch a.req.Model {
	case Status500:
		writeError(a.w, http.StatusInternalServerError, "CUDA out of memory")
		return true
	case Status400:
		writeError(a.w, http.StatusBadRequest, "this model's maximum context length is 8192 tokens")
		return true
	case Silent:
		return a.waitGone()
	case NotJSON:
		if !a.req.Stream {
			a.w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(a.w, "<html>this is not json</html>")
			return true
		}
	}
	if !a.req.Stream {
		return a.whole()
	}
	return a.stream()
}

// reply is the text of Echo and its variants.
func (a *answer) reply() string {
	last := ""
	for _, m := range a.req.Messages {
		if m.Role == "user" {
			last = m.Content
		}
	}
	return "You said: " + last
}

// words splits the reply into chunks that rejoin into it exactly.
func words(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s[1:], ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

func (a *answer) usage() map[string]int {
	prompt := 0
	for _, m := range a.req.Messages {
		prompt += len(strings.Fields(m.Content))
	}
	return map[string]int{"prompt_tokens": prompt, "completion_tokens": a.n, "total_tokens": prompt + a.n}
}

func (a *answer) whole() bool {
	text := a.reply()
	a.n = len(words(text))
	if a.req.Model == Slow && !a.sleep(time.Duration(a.n)*a.s.Delay) {
		return false
	}
	a.w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(a.w).Encode(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": a.req.Model,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": "stop"}},
		"usage":   a.usage(),
	})
	return true
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": nil}})
}

// waitGone blocks until the client leaves and records when.
func (a *answer) waitGone() bool {
	<-a.r.Context().Done()
	a.s.canceled <- time.Now()
	return false
}

// sleep waits d, or returns false (recording the cancellation) when the
// client leaves first.
func (a *answer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.r.Context().Done():
		a.s.canceled <- time.Now()
		return false
	}
}

// chunk encodes one stream chunk with content (and the role on the first).
func (a *answer) chunk(content string, finish string) []byte {
	delta := map[string]any{}
	if a.n == 0 {
		delta["role"] = "assistant"
	}
	if content != "" {
		delta["content"] = content
		a.n++
	}
	var fr any
	if finish != "" {
		fr = finish
	}
	c := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": a.req.Model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fr}}}
	if a.req.IncludeUsage {
		c["usage"] = nil
	}
	b, _ := json.Marshal(c)
	return b
}

// send writes raw bytes and flushes; false when the client is gone.
func (a *answer) send(b string) bool {
	if _, err := io.WriteString(a.w, b); err != nil {
		a.s.canceled <- time.Now()
		return false
	}
	a.w.(http.Flusher).Flush()
	return true
}

func (a *answer) event(data []byte) bool { return a.send("data: " + string(data) + "\n\n") }

func (a *answer) stream() bool {
	a.w.Header().Set("Content-Type", "text/event-stream")
	a.w.Header().Set("Cache-Control", "no-cache")
	a.w.WriteHeader(http.StatusOK)
	a.w.(http.Flusher).Flush()
	switch a.req.Model {
	case Dialects:
		return a.dialects()
	case Clock:
		return a.clock()
	case Hang:
		return a.event(a.chunk("Hel", "")) && a.waitGone()
	case SilentAfterFirst:
		return a.event(a.chunk("You", "")) && a.waitGone()
	case NotJSON:
		return a.event(a.chunk("You", "")) && a.send("data: this is not json\n\n")
	case ErrorData, ErrorLine, ErrorEvent, Die:
		return a.broken()
	case Truncated:
		return a.event(a.chunk("You ", "")) && a.event(a.chunk("said", "")) && false
	}
	var delay time.Duration
	if a.req.Model == Slow {
		delay = a.s.Delay
	}
	for _, w := range words(a.reply()) {
		if delay > 0 && !a.sleep(delay) {
			return false
		}
		if !a.event(a.chunk(w, "")) {
			return false
		}
	}
	return a.finish()
}

// finish sends the last chunk, the usage chunk when asked, and [DONE].
func (a *answer) finish() bool {
	if !a.event(a.chunk("", "stop")) {
		return false
	}
	if a.req.IncludeUsage {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
			"model": a.req.Model, "choices": []any{}, "usage": a.usage()})
		if !a.event(b) {
			return false
		}
	}
	if a.req.Model == NoDone {
		return true
	}
	return a.send("data: [DONE]\n\n")
}

// dialects is Echo in the lenient dialects: every oddity a strict decoder
// trips on, before and between real events.
func (a *answer) dialects() bool {
	if !a.send(": ping\r\n\r\n") || !a.send("data:\r\n\r\n") || !a.send("data: \n\n") {
		return false
	}
	for i, w := range words(a.reply()) {
		ev := "data:" + string(a.chunk(w, "")) + "\r\n\r\n"
		if i%2 == 1 {
			// Split inside the event, across two writes and flushes.
			mid := len(ev) / 2
			if !a.send(ev[:mid]) || !a.sleep(5*time.Millisecond) || !a.send(ev[mid:]) {
				return false
			}
			continue
		}
		if !a.send(ev) || !a.send(": keep-alive\n\n") {
			return false
		}
	}
	return a.finish()
}

// broken sends two chunks, then fails the way its behaviour says.
func (a *answer) broken() bool {
	if !a.event(a.chunk("You ", "")) || !a.event(a.chunk("said", "")) {
		return false
	}
	switch a.req.Model {
	case ErrorData:
		return a.send(`data: {"error": {"message": "the engine ran out of memory", "type": "server_error", "code": 500}}` + "\n\n")
	case ErrorLine:
		return a.send(`error: {"code": 500, "message": "llama_decode failed", "type": "server_error"}` + "\n\n")
	case ErrorEvent:
		return a.send("event: error\ndata: {\"message\": \"the worker crashed\"}\n\n")
	}
	// Die: no more bytes, no chunk terminator: the connection just ends.
	conn, buf, err := http.NewResponseController(a.w).Hijack()
	if err == nil {
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as from a killed process
		}
		conn.Close()
	}
	return false
}

// clock sends timestamped chunks for the relay latency measurement. The
// chunk is put together by hand, not encoded: the measurement runs
// hundreds of these in the process that also reads them, and an encoder
// per chunk would be most of its work.
func (a *answer) clock() bool {
	n := max(a.s.Chunks, 1)
	head := `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"clock","choices":[{"index":0,"delta":{"content":"`
	tail := `"},"finish_reason":null}]`
	if a.req.IncludeUsage {
		tail += `,"usage":null`
	}
	tail += "}\n\n"
	buf := make([]byte, 0, len(head)+len(tail)+20)
	fl := a.w.(http.Flusher)
	for i := 0; i < n; i++ {
		if i > 0 && !a.sleep(a.s.Delay) {
			return false
		}
		buf = append(strconv.AppendInt(append(buf[:0], head...), time.Now().UnixNano(), 10), tail...)
		if _, err := a.w.Write(buf); err != nil {
			a.s.canceled <- time.Now()
			return false
		}
		fl.Flush()
		a.n++
	}
	return a.finish()
}

// ReadStream reads an OpenAI stream from r (strictly: the gateway must
// relay clean events) and returns the content deltas and the data of
// every event, for tests that check what a client receives.
func ReadStream(r io.Reader) (text string, events []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var b strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return b.String(), events, fmt.Errorf("unexpected line %q", line)
		}
		events = append(events, data)
		if data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return b.String(), events, fmt.Errorf("event %q: %v", data, err)
		}
		if len(c.Choices) > 0 {
			b.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return b.String(), events, sc.Err()
}
