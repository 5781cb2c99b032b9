package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// The OpenAI-compatible API (/v1) answers errors in OpenAI's shape, which
// its client libraries read: {"error": {"code", "message", "type"}}, with
// the codes and statuses of the rest of the API.

type v1ErrorBody struct {
	Error v1Error `json:"error"`
}

type v1Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Type    string `json:"type"`
}

// v1Types are OpenAI's error types for the codes of the contract; any
// other code is a "server_error".
var v1Types = map[string]string{
	modellab.EINVALID:      "invalid_request_error",
	modellab.ENOTFOUND:     "invalid_request_error",
	modellab.ECONFLICT:     "invalid_request_error",
	modellab.ETOOLARGE:     "invalid_request_error",
	modellab.EUNAUTHORIZED: "authentication_error",
	modellab.EFORBIDDEN:    "permission_error",
	modellab.ERATELIMITED:  "rate_limit_error",
}

func v1ErrorOf(err error) (v1ErrorBody, int) {
	code, status := transport.Classify(err)
	typ, ok := v1Types[code]
	if !ok {
		typ = "server_error"
	}
	return v1ErrorBody{Error: v1Error{Code: code, Message: modellab.ErrorMessage(err), Type: typ}}, status
}

// v1 is api for the /v1 routes.
func (s *Server) v1(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeV1Error(w, r, 0, err)
		}
	}
}

// writeV1Error is writeErrorStatus in the OpenAI shape.
func (s *Server) writeV1Error(w http.ResponseWriter, r *http.Request, status int, err error) {
	if transport.ClientGone(r) {
		clientGone(w)
		s.log.DebugContext(r.Context(), "client went away", "err", err, "path", r.URL.Path, "request_id", requestID(r.Context()))
		return
	}
	body, st := v1ErrorOf(err)
	if status == 0 {
		status = st
	}
	s.logGatewayError(r, body.Error.Code, err)
	setErrorHeaders(w, r, body.Error.Code, status)
	writeJSON(w, status, body)
}

func (s *Server) logGatewayError(r *http.Request, code string, err error) {
	switch code {
	case modellab.EINTERNAL:
		s.log.ErrorContext(r.Context(), "internal error", "err", err, "method", r.Method, "path", r.URL.Path, "request_id", requestID(r.Context()))
	case modellab.EUNAVAILABLE, modellab.EBADGATEWAY, modellab.EGATEWAYTIMEOUT:
		s.log.WarnContext(r.Context(), "chat completion failed", "code", code, "err", err, "path", r.URL.Path, "request_id", requestID(r.Context()))
	}
}

// v1CatchAll is the pattern that answers the /v1 paths no route knows.
const v1CatchAll = "/v1/"

// v1Fallback answers unknown /v1 paths (404) and known ones with another
// method (405 with Allow) in the OpenAI shape.
func (s *Server) v1Fallback(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeV1Error(w, r, http.StatusMethodNotAllowed,
				modellab.Errorf(modellab.EINVALID, "method %s is not allowed here; use %s", r.Method, strings.Join(allow, ", ")))
			return
		}
		s.writeV1Error(w, r, 0, modellab.Errorf(modellab.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	}
}

func (s *Server) handleV1Models(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	a, err := s.svc.ChatModels(r.Context(), u)
	if err != nil {
		return err
	}
	writeCached(w, r, &a, false)
	return nil
}

// handleChatCompletions relays an OpenAI chat completion to one of the
// model's running servers. The server's read and write deadlines are
// lifted first: an answer may take longer than either.
func (s *Server) handleChatCompletions(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	transport.LiftDeadlines(w)
	c, err := s.svc.Complete(r.Context(), u, body)
	if err != nil {
		return err
	}
	defer c.Close()
	if !c.Streaming() {
		return relayWhole(w, c)
	}
	s.relayStream(w, r, c)
	return nil
}

// relayWhole answers the upstream's status and body as they came.
func relayWhole(w http.ResponseWriter, c *service.Completion) error {
	b, err := c.ReadAll()
	if err != nil {
		return err
	}
	h := w.Header()
	ct := c.ContentType()
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transport.StreamWriteTimeout))
	w.WriteHeader(c.Status())
	_, _ = w.Write(b)
	return nil
}

// relayStream relays the upstream's chunks as clean events, then [DONE]; a
// failure mid-stream is a last event with an error object, and no [DONE].
// Chunks are flushed before every read from the upstream: each is sent as
// soon as nothing more has already arrived, and those that arrived
// together go in one write.
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, c *service.Completion) {
	es := transport.StartEventStream(w)
	c.BeforeRead(func() { _ = es.Flush() })
	done := []byte("[DONE]")
	for {
		data, err := c.Next()
		if errors.Is(err, io.EOF) {
			_ = es.Data(done)
			return
		}
		if err != nil {
			if transport.ClientGone(r) {
				return
			}
			body, _ := v1ErrorOf(err)
			s.logGatewayError(r, body.Error.Code, err)
			_ = es.JSON(body)
			return
		}
		if es.Buffer(data) != nil {
			return
		}
	}
}

// ---- conversations ---------------------------------------------------------

func (s *Server) handleListConversations(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	a, err := s.svc.Conversations(r.Context(), u)
	if err != nil {
		return err
	}
	writeCached(w, r, &a, false)
	return nil
}

func (s *Server) handleCreateConversation(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in service.CreateConversationInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c, err := s.svc.CreateConversation(r.Context(), u, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/conversations/"+c.ID)
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) handleGetConversation(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	d, err := s.svc.GetConversation(r.Context(), u, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) handleDeleteConversation(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteConversation(r.Context(), u, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type sendMessageBody struct {
	Content string `json:"content"`
}

// handleSendMessage answers text/event-stream once the turn is stored:
// {"delta"} events, an {"error"} event when the reply was cut short by a
// failure, then {"done": true, "message"} with the reply as stored.
// Failures before that (bad content, no running server…) are the usual
// JSON errors.
func (s *Server) handleSendMessage(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var in sendMessageBody
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	sink := &eventSink{w: w}
	msg, err := s.svc.SendMessage(r.Context(), u, service.SendMessageInput{ConversationID: r.PathValue("id"), Content: in.Content, Sink: sink})
	if msg.ID == "" {
		return err
	}
	if transport.ClientGone(r) {
		return nil
	}
	if err != nil {
		code, _ := transport.Classify(err)
		s.logGatewayError(r, code, err)
		_ = sink.es.JSON(service.ChatError{Error: service.ChatErrorBody{Code: code, Message: modellab.ErrorMessage(err)}})
	}
	_ = sink.es.JSON(service.ChatDone{Done: true, Message: msg})
	return nil
}

// eventSink streams a reply to the client as server-sent events.
type eventSink struct {
	w  http.ResponseWriter
	es *transport.EventStream
}

func (k *eventSink) Start() error {
	k.es = transport.StartEventStream(k.w)
	return nil
}

func (k *eventSink) Delta(text string) error {
	return k.es.JSON(service.ChatDelta{Delta: text})
}
