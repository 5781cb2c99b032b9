package transport

import (
	"encoding/json"
	"net/http"
	"time"
)

// StreamWriteTimeout bounds each write of an event stream. The server's
// WriteTimeout counts from the start of the request and would cut every
// stream longer than it, so a stream lifts it and gives each event its own
// deadline instead: a reader that stops reading is dropped, a long reply
// is not.
const StreamWriteTimeout = 30 * time.Second

// EventStream writes server-sent events to a client, each flushed as it is
// written.
type EventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// armed is when the write deadline was last pushed: it moves at most
	// once a second, not on every event (a chunk every few milliseconds).
	armed   time.Time
	pending bool // events written since the last flush
}

// LiftDeadlines frees a long request from the server's WriteTimeout,
// which counts from the start of the request and would cut the answer
// (TestChatStreamRelay fails without this), and from its ReadTimeout
// (net/http already clears that one once the body is read; a handler that
// answered before reading it all would be cut too). Writers that need a
// bound set their own (see EventStream).
func LiftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// StartEventStream answers 200 with the headers of an event stream and
// sends them at once: Cache-Control: no-store, and X-Accel-Buffering: no,
// without which proxies such as nginx buffer the stream.
func StartEventStream(w http.ResponseWriter) *EventStream {
	LiftDeadlines(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	s := &EventStream{w: w, rc: http.NewResponseController(w)}
	_ = s.rc.Flush()
	return s
}

var (
	dataPrefix = []byte("data: ")
	eventEnd   = []byte("\n\n")
)

// Data sends one event whose data is b (one line: JSON, or [DONE]). An
// error means the client is gone.
func (s *EventStream) Data(b []byte) error {
	if err := s.Buffer(b); err != nil {
		return err
	}
	return s.Flush()
}

// Buffer writes one event without sending it yet: Flush sends what is
// buffered.
func (s *EventStream) Buffer(b []byte) error {
	if now := time.Now(); now.Sub(s.armed) >= time.Second {
		_ = s.rc.SetWriteDeadline(now.Add(StreamWriteTimeout))
		s.armed = now
	}
	s.pending = true
	if _, err := s.w.Write(dataPrefix); err != nil {
		return err
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	_, err := s.w.Write(eventEnd)
	return err
}

// Flush sends the buffered events, if any.
func (s *EventStream) Flush() error {
	if !s.pending {
		return nil
	}
	s.pending = false
	return s.rc.Flush()
}

// JSON sends v encoded as the data of one event.
func (s *EventStream) JSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Data(b)
}
