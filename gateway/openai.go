package gateway

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/modellab/modellab"
)

// Call is a parsed OpenAI chat completion request. Only the fields the
// gateway acts on are read; every other field (messages, tools,
// temperature, vendor extensions…) goes to the upstream untouched.
type Call struct {
	// Model is the model as the client named it.
	Model string
	// Stream is the client's stream flag.
	Stream bool
	// WantsUsage is whether the client asked for the usage chunk of a
	// stream (stream_options.include_usage). The gateway always asks the
	// upstream for it, to record usage, and hides it from a client that
	// did not ask.
	WantsUsage bool

	fields map[string]json.RawMessage
}

// ParseCall reads a chat completion request body. A body that is not a
// JSON object with a string model is EINVALID.
func ParseCall(body []byte) (*Call, error) {
	c := &Call{}
	if err := json.Unmarshal(body, &c.fields); err != nil || c.fields == nil {
		return nil, modellab.Errorf(modellab.EINVALID, "the request body must be a JSON object (an OpenAI chat completion request)")
	}
	raw, ok := c.fields["model"]
	if !ok || json.Unmarshal(raw, &c.Model) != nil || strings.TrimSpace(c.Model) == "" {
		return nil, modellab.FieldErrorf("model", "model must name a model (its name or id)")
	}
	if raw, ok := c.fields["stream"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &c.Stream) != nil {
			return nil, modellab.FieldErrorf("stream", "stream must be a boolean")
		}
	}
	if raw, ok := c.fields["stream_options"]; ok && string(raw) != "null" {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &so) != nil {
			return nil, modellab.FieldErrorf("stream_options", "stream_options must be an object")
		}
		c.WantsUsage = so.IncludeUsage
	}
	return c, nil
}

// NewCall builds a request of the gateway's own (the chat of a
// conversation): a streamed completion of messages.
func NewCall(model string, messages any) (*Call, error) {
	raw, err := json.Marshal(messages)
	if err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not encode the conversation")
	}
	return &Call{Model: model, Stream: true, fields: map[string]json.RawMessage{"messages": raw}}, nil
}

// Body encodes the request for an upstream that knows the model as
// upstreamModel. A streamed request asks for the usage chunk, keeping any
// other stream option the client set.
func (c *Call) Body(upstreamModel string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(c.fields)+2)
	for k, v := range c.fields {
		out[k] = v
	}
	m, _ := json.Marshal(upstreamModel)
	out["model"] = m
	if c.Stream {
		out["stream"] = json.RawMessage("true")
		so := map[string]json.RawMessage{}
		if raw, ok := c.fields["stream_options"]; ok && string(raw) != "null" {
			_ = json.Unmarshal(raw, &so)
		}
		so["include_usage"] = json.RawMessage("true")
		out["stream_options"], _ = json.Marshal(so)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, modellab.WrapError(modellab.EINTERNAL, err, "could not encode the request")
	}
	return b, nil
}

// Usage is the token count an upstream reports.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// chunk is what the gateway reads of a completion or a stream chunk.
type chunk struct {
	Usage   *Usage            `json:"usage"`
	Choices []json.RawMessage `json:"choices"`
	Error   json.RawMessage   `json:"error"`
}

var usageKey = []byte(`"usage"`)

// usageOf returns the usage of a completion or chunk, and whether the
// chunk carries nothing else (no choices): the usage-only chunk that ends
// a stream asked for it.
func usageOf(data []byte) (u Usage, ok, only bool) {
	if !hasObject(data, usageKey) {
		return Usage{}, false, false
	}
	var c chunk
	if json.Unmarshal(data, &c) != nil || c.Usage == nil {
		return Usage{}, false, false
	}
	return *c.Usage, true, len(c.Choices) == 0
}

// hasObject reports whether data may hold key with an object value: a
// cheap scan that spares decoding the chunks of a stream asked for usage,
// which all carry "usage": null but the last.
func hasObject(data, key []byte) bool { return hasValue(data, key, '{') }

// hasValue reports whether key appears in data followed by a value that
// starts with first, whatever the spacing around the colon.
func hasValue(data, key []byte, first byte) bool {
	for {
		i := bytes.Index(data, key)
		if i < 0 {
			return false
		}
		data = bytes.TrimLeft(data[i+len(key):], " \t\r\n")
		if len(data) > 0 && data[0] == ':' {
			if v := bytes.TrimLeft(data[1:], " \t\r\n"); len(v) > 0 && v[0] == first {
				return true
			}
		}
	}
}

var errorKey = []byte(`"error"`)

// upstreamError returns the error an upstream put in a data event or a
// body ({"error": {...}} or {"error": "text"}), nil when there is none.
func upstreamError(data []byte) error {
	if !bytes.Contains(data, errorKey) {
		return nil
	}
	var c chunk
	if json.Unmarshal(data, &c) != nil || len(c.Error) == 0 || string(c.Error) == "null" {
		return nil
	}
	return modellab.Errorf(modellab.EBADGATEWAY, "the inference server reported an error: %s", errorText(c.Error))
}

// errorText is the message of an upstream's error value, whatever its
// dialect: an object with a message, a string, or anything else (shown
// raw, cut short).
func errorText(raw []byte) string {
	var obj struct {
		Message string `json:"message"`
	}
	var s string
	switch {
	case json.Unmarshal(raw, &obj) == nil && obj.Message != "":
		s = obj.Message
	case json.Unmarshal(raw, &s) == nil:
	default:
		s = string(raw)
	}
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		s = "no detail given"
	}
	return s
}

// ErrorText is the message of an upstream's error body, in any of the
// dialects upstreamError reads.
func ErrorText(body []byte) string {
	var c chunk
	if json.Unmarshal(body, &c) == nil && len(c.Error) > 0 && string(c.Error) != "null" {
		return errorText(c.Error)
	}
	return errorText(body)
}

// MessageText returns the reply of a completion read whole (the content
// of its first choice's message).
func MessageText(body []byte) string {
	var c struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(body, &c) != nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Message.Content
}

// DeltaText returns the text a stream chunk adds to the reply (the
// content of its first choice's delta), "" when it adds none.
func DeltaText(data []byte) string {
	var c struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if json.Unmarshal(data, &c) != nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Delta.Content
}
