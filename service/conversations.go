package service

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/gateway"
)

// Conversations returns u's encoded conversation list, newest first.
func (s *Service) Conversations(ctx context.Context, u *modellab.User) (Answer, error) {
	spec := readSpec{key: keyConversations(u.ID), group: GroupChat, ttl: s.cfg.ServersTTL}
	return answerOf(cachedRead(ctx, s, spec, u.ID, loadConversations))
}

func loadConversations(ctx context.Context, s *Service, ownerID string) (ConversationList, error) {
	cs, err := s.store.ListConversations(ctx, ownerID)
	return ConversationList{Conversations: nonNil(cs)}, err
}

// CreateConversationInput is what a caller sends to start a conversation.
type CreateConversationInput struct {
	ModelID string `json:"model_id"`
	Title   string `json:"title"`
}

// CreateConversation starts a conversation of u with a model u can see.
// Without a title, the first message names it.
func (s *Service) CreateConversation(ctx context.Context, u *modellab.User, in CreateConversationInput) (modellab.Conversation, error) {
	c := modellab.Conversation{Title: strings.TrimSpace(in.Title), ModelID: in.ModelID, OwnerID: u.ID}
	if c.ModelID == "" {
		return c, modellab.FieldErrorf("model_id", "model_id is required")
	}
	if err := c.Valid(); err != nil {
		return c, err
	}
	if _, err := s.visibleModel(ctx, u, c.ModelID); err != nil {
		if modellab.ErrorCode(err) == modellab.ENOTFOUND {
			return c, modellab.FieldErrorf("model_id", "model_id does not name a model you can use")
		}
		return c, err
	}
	c.ID = modellab.NewID(modellab.PrefixConversation)
	c.CreatedAt = s.stamp()
	c.UpdatedAt = c.CreatedAt
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.CreateConversation(ctx, &c) }); err != nil {
		return c, err
	}
	s.cache.Invalidate(ctx, keyConversations(u.ID))
	return c, nil
}

func (s *Service) ownConversation(ctx context.Context, u *modellab.User, id string) (modellab.Conversation, error) {
	notFound := modellab.Errorf(modellab.ENOTFOUND, "conversation not found")
	if !modellab.ValidID(id) {
		return modellab.Conversation{}, notFound
	}
	var c modellab.Conversation
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		c, err = s.store.GetConversation(ctx, id)
		return err
	})
	if modellab.ErrorCode(err) == modellab.ENOTFOUND || err == nil && c.OwnerID != u.ID {
		return modellab.Conversation{}, notFound
	}
	return c, err
}

// GetConversation returns one of u's conversations with its messages;
// another user's is ENOTFOUND.
func (s *Service) GetConversation(ctx context.Context, u *modellab.User, id string) (ConversationDetail, error) {
	c, err := s.ownConversation(ctx, u, id)
	if err != nil {
		return ConversationDetail{}, err
	}
	d := ConversationDetail{Conversation: c}
	err = s.withDB(ctx, func(ctx context.Context) error {
		var err error
		if d.Messages, err = s.store.ListMessages(ctx, c.ID); err != nil {
			return err
		}
		s.settleAbandoned(ctx, d.Messages)
		return nil
	})
	d.Messages = nonNil(d.Messages)
	return d, err
}

// abandonedAfter is how long a streaming reply can go unwritten while its
// writer lives: the gateway's longest silence, then the write interval and
// the bound of the final write, with a margin.
func (s *Service) abandonedAfter() time.Duration {
	return s.gw.LongestSilence() + replyFlushEvery + finishTimeout + 5*time.Second
}

// settleAbandoned marks error, and stores so, every streaming reply that
// no writer can still be writing: its serve process died mid-stream. It
// would otherwise stay streaming for ever. What was received is kept.
func (s *Service) settleAbandoned(ctx context.Context, msgs []modellab.Message) {
	for i := range msgs {
		m := &msgs[i]
		if m.Status != modellab.MessageStreaming || s.now().Sub(m.UpdatedAt) < s.abandonedAfter() {
			continue
		}
		m.Status = modellab.MessageError
		if err := s.store.UpdateMessage(ctx, m); err != nil {
			s.log.WarnContext(ctx, "could not settle an abandoned reply", "message_id", m.ID, "err", err)
		}
	}
}

// DeleteConversation removes one of u's conversations and its messages.
func (s *Service) DeleteConversation(ctx context.Context, u *modellab.User, id string) error {
	if _, err := s.ownConversation(ctx, u, id); err != nil {
		return err
	}
	if err := s.withDB(ctx, func(ctx context.Context) error { return s.store.DeleteConversation(ctx, id) }); err != nil {
		return err
	}
	s.cache.Invalidate(ctx, keyConversations(u.ID))
	return nil
}

// ReplySink receives a reply as it streams. Start is called once the turn
// is stored, before the inference server is asked; Delta with every piece
// of the reply. An error from either (its reader left) ends the reply as
// canceled.
type ReplySink interface {
	Start() error
	Delta(text string) error
}

// SendMessageInput is one message of a person to a conversation.
type SendMessageInput struct {
	ConversationID string
	Content        string
	Sink           ReplySink
}

// SendMessage stores the message and an empty reply, sends the
// conversation through the gateway and stores the reply as it streams in.
// Errors before anything is stored (bad content, another user's
// conversation, no running server) come back with a zero Message. Once
// stored, the reply is always returned, in its final state: done, or error
// / canceled with what had arrived, and the error that cut it short.
func (s *Service) SendMessage(ctx context.Context, u *modellab.User, in SendMessageInput) (modellab.Message, error) {
	if err := modellab.ValidUserContent(in.Content); err != nil {
		return modellab.Message{}, err
	}
	c, err := s.ownConversation(ctx, u, in.ConversationID)
	if err != nil {
		return modellab.Message{}, err
	}
	r, err := s.routeFor(ctx, u, c.ModelID)
	if err != nil {
		return modellab.Message{}, err
	}
	call, reply, err := s.startTurn(ctx, c, r, in.Content)
	if err != nil {
		return modellab.Message{}, err
	}
	s.cache.Invalidate(ctx, keyConversations(u.ID))
	w := &replyWriter{s: s, msg: reply, last: time.Now()}
	if err := in.Sink.Start(); err != nil {
		return w.finish(ctx, modellab.MessageCanceled), err
	}
	err = s.streamReply(ctx, u, r, call, w, in.Sink)
	status := modellab.MessageDone
	switch {
	case ctx.Err() != nil || errors.As(err, new(*sinkError)):
		status = modellab.MessageCanceled
	case err != nil:
		status = modellab.MessageError
	}
	return w.finish(ctx, status), err
}

// startTurn reads the history, then stores the user's message and the
// reply to come (streaming), and returns the request to send.
func (s *Service) startTurn(ctx context.Context, c modellab.Conversation, r *chatRoute, content string) (*gateway.Call, modellab.Message, error) {
	var history []modellab.Message
	now := s.stamp()
	turn := []modellab.Message{
		{Role: modellab.RoleUser, Content: content, Status: modellab.MessageDone, CreatedAt: now},
		{Role: modellab.RoleAssistant, Status: modellab.MessageStreaming, CreatedAt: now},
	}
	err := s.withDB(ctx, func(ctx context.Context) error {
		var err error
		if history, err = s.store.ListMessages(ctx, c.ID); err != nil {
			return err
		}
		return s.store.AddMessages(ctx, c.ID, turn, modellab.TitleFrom(content))
	})
	if err != nil {
		return nil, modellab.Message{}, err
	}
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var msgs []msg
	for _, m := range append(history, turn[0]) {
		if m.Content != "" {
			msgs = append(msgs, msg{m.Role, m.Content})
		}
	}
	call, err := gateway.NewCall(r.model.Name, msgs)
	return call, turn[1], err
}

// sinkError is a sink's refusal: the reader is gone.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "the reader left: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// streamReply relays the completion's deltas to the sink and the writer.
func (s *Service) streamReply(ctx context.Context, u *modellab.User, r *chatRoute, call *gateway.Call, w *replyWriter, sink ReplySink) error {
	comp, err := s.send(ctx, u, r, call)
	if err != nil {
		return err
	}
	defer comp.Close()
	if !comp.Streaming() {
		return wholeReply(ctx, comp, w, sink)
	}
	for {
		data, err := comp.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		delta := gateway.DeltaText(data)
		if delta == "" {
			continue
		}
		if err := w.add(ctx, delta); err != nil {
			return err
		}
		if err := sink.Delta(delta); err != nil {
			return &sinkError{err}
		}
	}
}

// wholeReply takes an upstream that answered without streaming (or refused
// the request with a 4xx) as one delta.
func wholeReply(ctx context.Context, comp *Completion, w *replyWriter, sink ReplySink) error {
	b, err := comp.ReadAll()
	if err != nil {
		return err
	}
	if comp.Status() >= 400 {
		return modellab.Errorf(modellab.EBADGATEWAY, "the inference server refused the request (%d): %s", comp.Status(), gateway.ErrorText(b))
	}
	text := gateway.MessageText(b)
	if err := w.add(ctx, text); err != nil {
		return err
	}
	if err := sink.Delta(text); err != nil {
		return &sinkError{err}
	}
	return nil
}

// How often a streaming reply is written to the database: a reader who
// leaves, a crash or a restart loses at most this much of it.
const (
	replyFlushEvery = 500 * time.Millisecond
	replyFlushBytes = 4 << 10
	// finishTimeout bounds the final write of a reply; it runs detached
	// from the request, whose client may be gone.
	finishTimeout = 5 * time.Second
)

// replyWriter accumulates a reply and stores it as it grows.
type replyWriter struct {
	s       *Service
	msg     modellab.Message
	buf     strings.Builder
	last    time.Time
	flushed int // bytes of buf already stored
}

func (w *replyWriter) add(ctx context.Context, delta string) error {
	if w.buf.Len()+len(delta) > modellab.MaxReplyBytes {
		return modellab.Errorf(modellab.EBADGATEWAY, "the reply exceeded %d bytes and was cut", modellab.MaxReplyBytes)
	}
	w.buf.WriteString(delta)
	if w.buf.Len()-w.flushed >= replyFlushBytes || time.Since(w.last) >= replyFlushEvery {
		w.store(ctx, modellab.MessageStreaming)
	}
	return nil
}

// store writes the reply so far. A failure is logged, not returned: the
// reply goes on, and the next write (at the latest the final one) catches
// up.
func (w *replyWriter) store(ctx context.Context, status string) bool {
	m := w.msg
	m.Content, m.Status = w.buf.String(), status
	err := w.s.withDB(ctx, func(ctx context.Context) error { return w.s.store.UpdateMessage(ctx, &m) })
	w.last = time.Now()
	if err != nil {
		w.s.log.WarnContext(ctx, "could not store a reply", "message_id", m.ID, "status", status, "err", err)
		return false
	}
	w.msg, w.flushed = m, w.buf.Len()
	return true
}

// finish stores the reply's final state, detached from the request (its
// client may be gone: what was received must not be lost with it), and
// returns it.
func (w *replyWriter) finish(ctx context.Context, status string) modellab.Message {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	for i := 0; i < 3 && !w.store(ctx, status); i++ {
		time.Sleep(100 * time.Millisecond << i)
	}
	w.msg.Content, w.msg.Status = w.buf.String(), status
	return w.msg
}
