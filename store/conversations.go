package store

import (
	"context"
	"sync"
	"time"

	"github.com/modellab/modellab"
)

const (
	conversationCols = "id, owner_id, model_id, title, created_at, updated_at"
	messageCols      = "id, conversation_id, role, content, status, created_at, updated_at"
)

func scanConversation(r interface{ Scan(...any) error }) (modellab.Conversation, error) {
	var c modellab.Conversation
	var created, updated int64
	err := r.Scan(&c.ID, &c.OwnerID, &c.ModelID, &c.Title, &created, &updated)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, err
}

func scanMessage(r interface{ Scan(...any) error }) (modellab.Message, error) {
	var m modellab.Message
	var created, updated int64
	err := r.Scan(&m.ID, &m.ConversationID, &m.Role, &m.Content, &m.Status, &created, &updated)
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return m, err
}

// CreateConversation stores c, setting ID and the times unless set.
func (db *DB) CreateConversation(ctx context.Context, c *modellab.Conversation) error {
	if err := c.Valid(); err != nil {
		return err
	}
	nc := *c
	if nc.ID == "" {
		nc.ID = modellab.NewID(modellab.PrefixConversation)
	}
	if nc.CreatedAt.IsZero() {
		nc.CreatedAt = now()
	}
	if nc.UpdatedAt.IsZero() {
		nc.UpdatedAt = nc.CreatedAt
	}
	nc.CreatedAt = nc.CreatedAt.UTC().Truncate(time.Microsecond)
	nc.UpdatedAt = nc.UpdatedAt.UTC().Truncate(time.Microsecond)
	_, err := db.exec(ctx, "INSERT INTO conversations ("+conversationCols+") VALUES (?, ?, ?, ?, ?, ?)",
		nc.ID, nc.OwnerID, nc.ModelID, nc.Title, micros(nc.CreatedAt), micros(nc.UpdatedAt))
	if err != nil {
		if classify(err) == modellab.EINVALID {
			return modellab.WrapError(modellab.EINVALID, err, "the conversation's owner does not exist")
		}
		return fail(err, "create conversation")
	}
	*c = nc
	return nil
}

// ListConversations returns ownerID's conversations, newest first (by
// creation, then id).
func (db *DB) ListConversations(ctx context.Context, ownerID string) ([]modellab.Conversation, error) {
	r, err := db.query(ctx, "SELECT "+conversationCols+
		` FROM conversations WHERE owner_id = ? ORDER BY created_at DESC, id COLLATE "C" DESC`, ownerID)
	if err != nil {
		return nil, fail(err, "list conversations")
	}
	defer r.Close()
	out := []modellab.Conversation{}
	for r.Next() {
		c, err := scanConversation(r)
		if err != nil {
			return nil, fail(err, "list conversations")
		}
		out = append(out, c)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, "list conversations")
	}
	return out, nil
}

// GetConversation returns one conversation whoever owns it; ownership is
// the caller's business.
func (db *DB) GetConversation(ctx context.Context, id string) (modellab.Conversation, error) {
	r, err := db.query(ctx, "SELECT "+conversationCols+" FROM conversations WHERE id = ?", id)
	if err != nil {
		return modellab.Conversation{}, fail(err, "get conversation")
	}
	defer r.Close()
	if !r.Next() {
		if err := r.Err(); err != nil {
			return modellab.Conversation{}, fail(err, "get conversation")
		}
		return modellab.Conversation{}, modellab.Errorf(modellab.ENOTFOUND, "conversation %s not found", id)
	}
	c, err := scanConversation(r)
	if err != nil {
		return modellab.Conversation{}, fail(err, "get conversation")
	}
	return c, nil
}

// DeleteConversation deletes a conversation and its messages.
func (db *DB) DeleteConversation(ctx context.Context, id string) error {
	n, err := db.exec(ctx, "DELETE FROM conversations WHERE id = ?", id)
	if err != nil {
		return fail(err, "delete conversation")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "conversation %s not found", id)
	}
	return nil
}

// ListMessages returns the messages of a conversation in order.
func (db *DB) ListMessages(ctx context.Context, conversationID string) ([]modellab.Message, error) {
	r, err := db.query(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = ? ORDER BY position", conversationID)
	if err != nil {
		return nil, fail(err, "list messages")
	}
	defer r.Close()
	out := []modellab.Message{}
	for r.Next() {
		m, err := scanMessage(r)
		if err != nil {
			return nil, fail(err, "list messages")
		}
		out = append(out, m)
	}
	if err := r.Err(); err != nil {
		return nil, fail(err, "list messages")
	}
	return out, nil
}

// AddMessages appends msgs to a conversation in one transaction, in order,
// setting their IDs (unless set) and creation times, and moves the
// conversation's updated_at to the first one's. When title is not empty
// and the conversation has none yet, it becomes the title. A conversation
// that is gone is ENOTFOUND; a concurrent append that took the same
// position is ECONFLICT.
func (db *DB) AddMessages(ctx context.Context, conversationID string, msgs []modellab.Message, title string) error {
	if len(msgs) == 0 {
		return nil
	}
	at := msgs[0].CreatedAt
	if at.IsZero() {
		at = now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	out := make([]modellab.Message, len(msgs))
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = modellab.NewID(modellab.PrefixMessage)
		}
		m.ConversationID, m.CreatedAt, m.UpdatedAt = conversationID, at, at
		out[i] = m
	}
	err := db.inTx(ctx, db.opts.QueryTimeout, func(t *tx) error {
		return appendMessages(t, conversationID, out, title, at)
	})
	if err != nil {
		if code := classify(err); code == modellab.ECONFLICT {
			return modellab.WrapError(code, err, "another message was added to this conversation at the same time")
		}
		return fail(err, "add messages")
	}
	copy(msgs, out)
	return nil
}

func appendMessages(t *tx, conversationID string, msgs []modellab.Message, title string, at time.Time) error {
	// Updating the conversation first locks its row (PostgreSQL), so that
	// concurrent appends to one conversation queue instead of colliding.
	n, err := t.execN(`UPDATE conversations SET updated_at = ?,
		title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?`, micros(at), title, conversationID)
	if err != nil {
		return err
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "conversation %s not found", conversationID)
	}
	var last int64
	if err := t.get("SELECT COALESCE(MAX(position), 0) FROM messages WHERE conversation_id = ?", []any{conversationID}, &last); err != nil {
		return err
	}
	for i, m := range msgs {
		if err := t.exec("INSERT INTO messages (id, conversation_id, position, role, content, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			m.ID, conversationID, last+int64(i)+1, m.Role, m.Content, m.Status, micros(at), micros(at)); err != nil {
			return err
		}
	}
	return nil
}

// UpdateMessage writes a message's content and status (a reply as it
// streams in, and when it ends).
func (db *DB) UpdateMessage(ctx context.Context, m *modellab.Message) error {
	if !modellab.ValidMessageStatus(m.Status) {
		return modellab.FieldErrorf("status", "status must be done, streaming, error or canceled")
	}
	at := now().UTC().Truncate(time.Microsecond)
	n, err := db.exec(ctx, "UPDATE messages SET content = ?, status = ?, updated_at = ? WHERE id = ?",
		m.Content, m.Status, micros(at), m.ID)
	if err != nil {
		return fail(err, "update message")
	}
	if n == 0 {
		return modellab.Errorf(modellab.ENOTFOUND, "message %s not found", m.ID)
	}
	m.UpdatedAt = at
	return nil
}

// execN is exec in a transaction that reports the rows affected.
func (t *tx) execN(q string, args ...any) (int64, error) {
	defer t.db.observe(time.Now())
	q = t.db.sqlFor(q)
	if t.pg != nil {
		tag, err := t.pg.Exec(t.ctx, q, args...)
		if err != nil {
			return 0, withCtx(t.ctx, err)
		}
		return tag.RowsAffected(), nil
	}
	res, err := t.sql.ExecContext(t.ctx, q, args...)
	if err != nil {
		return 0, withCtx(t.ctx, err)
	}
	n, err := res.RowsAffected()
	return n, withCtx(t.ctx, err)
}

// get reads one row in a transaction.
func (t *tx) get(q string, args []any, dest ...any) error {
	defer t.db.observe(time.Now())
	q = t.db.sqlFor(q)
	if t.pg != nil {
		return withCtx(t.ctx, t.pg.QueryRow(t.ctx, q, args...).Scan(dest...))
	}
	return withCtx(t.ctx, t.sql.QueryRowContext(t.ctx, q, args...).Scan(dest...))
}

// query reads rows in a transaction; the statement is counted when they
// are closed.
func (t *tx) query(q string, args ...any) (rows, error) {
	start := time.Now()
	done := sync.OnceFunc(func() { t.db.observe(start) }) // rows may be closed twice
	q = t.db.sqlFor(q)
	if t.pg != nil {
		r, err := t.pg.Query(t.ctx, q, args...)
		if err != nil {
			done()
			return nil, withCtx(t.ctx, err)
		}
		return pgRows{r, done}, nil
	}
	r, err := t.sql.QueryContext(t.ctx, q, args...)
	if err != nil {
		done()
		return nil, withCtx(t.ctx, err)
	}
	return &sqlRows{Rows: r, cancel: done}, nil
}

// ModelByName returns the model of that name that ownerID may see: their
// own private one first, else the global one. The gateway resolves the
// `model` of an OpenAI request with it when no running server matched, to
// tell an unknown model (404) from one that is not running (503).
func (db *DB) ModelByName(ctx context.Context, ownerID, name string) (modellab.Model, error) {
	ms, err := db.listModels(ctx, "get model by name", "SELECT "+modelCols+
		` FROM models WHERE name = ? AND (owner_id IS NULL OR owner_id = ?) ORDER BY owner_id IS NULL LIMIT 1`, name, ownerID)
	if err != nil {
		return modellab.Model{}, err
	}
	if len(ms) == 0 {
		return modellab.Model{}, modellab.Errorf(modellab.ENOTFOUND, "model %q not found", name)
	}
	return ms[0], nil
}
