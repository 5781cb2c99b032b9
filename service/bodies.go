package service

import "github.com/modellab/modellab"

// The bodies of the cached reads. The cache holds them encoded, exactly as
// the JSON API answers them; the pages decode the same bytes into these
// types.

// ModelList is the body of GET /api/models.
type ModelList struct {
	Models []modellab.Model `json:"models"`
}

// ServerStatus is the body of GET /api/servers/status.
type ServerStatus struct {
	Servers []ServerWithModel `json:"servers"`
	Summary ServerSummary     `json:"summary"`
}

// ServerWithModel is one row of the status: the server and the model it
// runs, nil when the model is gone or the caller may not see it.
type ServerWithModel struct {
	modellab.Server
	Model *modellab.Model `json:"model"`
}

// ServerSummary counts servers by status.
type ServerSummary struct {
	Total    int `json:"total"`
	Starting int `json:"starting"`
	Running  int `json:"running"`
	Stopped  int `json:"stopped"`
	Error    int `json:"error"`
}

// Add counts one server.
func (s *ServerSummary) Add(status string) {
	s.Total++
	switch status {
	case modellab.StatusStarting:
		s.Starting++
	case modellab.StatusRunning:
		s.Running++
	case modellab.StatusStopped:
		s.Stopped++
	case modellab.StatusError:
		s.Error++
	}
}

// RunList is the body of GET /api/runs: the caller's runs, newest first.
type RunList struct {
	Runs []modellab.Run `json:"runs"`
}

// The body of GET /api/runs/{id}/metrics is modellab.RunHistory.

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// OpenAIModelList is the body of GET /v1/models, in the OpenAI shape.
type OpenAIModelList struct {
	Object string        `json:"object"`
	Data   []OpenAIModel `json:"data"`
}

// OpenAIModel is one model a user can chat with: id is its name.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ConversationList is the body of GET /api/conversations.
type ConversationList struct {
	Conversations []modellab.Conversation `json:"conversations"`
}

// ConversationDetail is the body of GET /api/conversations/{id}.
type ConversationDetail struct {
	modellab.Conversation
	Messages []modellab.Message `json:"messages"`
}

// The events of a message stream (POST /api/conversations/{id}/messages
// and the chat page): deltas of the reply, an error when it was cut short
// by a failure, then the stored reply.

// ChatDelta is a piece of the reply.
type ChatDelta struct {
	Delta string `json:"delta"`
}

// ChatError says why the reply was cut short.
type ChatError struct {
	Error ChatErrorBody `json:"error"`
}

// ChatErrorBody is the error of a ChatError: a code of the API's table.
type ChatErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ChatDone ends the stream with the reply as stored.
type ChatDone struct {
	Done    bool             `json:"done"`
	Message modellab.Message `json:"message"`
}
