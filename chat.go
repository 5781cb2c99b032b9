package modellab

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of conversations.
const (
	MaxTitleLen = 200
	// MaxMessageLen bounds what a person sends in one message, in
	// characters.
	MaxMessageLen = 32000
	// MaxReplyBytes bounds one stored reply: a model that runs away is cut
	// there (status error), not stored without end.
	MaxReplyBytes = 1 << 20
	// titleFromMessageLen is how much of the first message names an
	// untitled conversation.
	titleFromMessageLen = 80
)

// ID prefixes of the chat.
const (
	PrefixConversation = "cnv_"
	PrefixMessage      = "msg_"
)

// Conversation is a chat of one user with one model. OwnerID is never
// shown: only the owner sees a conversation.
type Conversation struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	ModelID   string    `json:"model_id"`
	OwnerID   string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Valid checks a conversation's fields.
func (c *Conversation) Valid() error {
	if err := validText("title", c.Title, 0, MaxTitleLen); err != nil {
		return err
	}
	if !ValidID(c.ModelID) {
		return FieldErrorf("model_id", "model_id is required")
	}
	if c.OwnerID == "" {
		return Errorf(EINVALID, "a conversation needs an owner")
	}
	return nil
}

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message statuses. A reply is "streaming" while the model writes it and
// ends "done", or "canceled" (its reader left) or "error" (the inference
// server failed or timed out) with what had arrived by then.
const (
	MessageDone      = "done"
	MessageStreaming = "streaming"
	MessageError     = "error"
	MessageCanceled  = "canceled"
)

// Message is one turn of a conversation.
type Message struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"-"`
	Role           string    `json:"role"`
	Content        string    `json:"content"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	// UpdatedAt is when the message was last written: a streaming reply
	// is written as it grows, so an old one has no writer left.
	UpdatedAt time.Time `json:"-"`
}

// ValidMessageStatus reports whether s is a message status.
func ValidMessageStatus(s string) bool {
	switch s {
	case MessageDone, MessageStreaming, MessageError, MessageCanceled:
		return true
	}
	return false
}

// ValidUserContent checks what a person sends: not blank, valid UTF-8, at
// most MaxMessageLen characters, no control characters but line breaks and
// tabs.
func ValidUserContent(content string) error {
	if strings.TrimSpace(content) == "" {
		return FieldErrorf("content", "content must not be empty")
	}
	return validMultiline("content", content, MaxMessageLen)
}

// TitleFrom makes a conversation title of the start of a message: its
// first line, cut at a word when it is long.
func TitleFrom(content string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(content), "\n")
	line = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(line))
	if utf8.RuneCountInString(line) <= titleFromMessageLen {
		return line
	}
	r := []rune(line)[:titleFromMessageLen]
	cut := string(r)
	if i := strings.LastIndexByte(cut, ' '); i > titleFromMessageLen/2 {
		cut = cut[:i]
	}
	return strings.TrimSpace(cut) + "…"
}
