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
