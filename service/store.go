package service

import (
	"context"

	"github.com/modellab/modellab"
)

// Store is what the use cases need from the database. It is implemented by
// store.DB on SQLite and PostgreSQL. Errors are *modellab.Error: ENOTFOUND for
// a missing row, ECONFLICT for a uniqueness violation, EUNAVAILABLE when the
// database cannot be reached or times out.
type Store interface {
	Ping(ctx context.Context) error

	CreateUser(ctx context.Context, u *modellab.User) (token string, err error)
	// TokenByHash returns the token with this hash and its user, expired
	// or not.
	TokenByHash(ctx context.Context, hash string) (modellab.User, modellab.Token, error)
	CreateToken(ctx context.Context, t *modellab.Token) (secret string, err error)
	// ListTokens returns userID's tokens, newest first.
	ListTokens(ctx context.Context, userID string) ([]modellab.Token, error)
	GetToken(ctx context.Context, id string) (modellab.Token, error)
	// DeleteToken removes a token and returns its hash.
	DeleteToken(ctx context.Context, id string) (hash string, err error)
	// TouchTokens records last uses; an older use never overwrites a newer.
	TouchTokens(ctx context.Context, uses []modellab.TokenUse) error

	// ListModels returns the global models plus, when ownerID is not empty,
	// that owner's private ones, sorted by name (byte order) then id.
	ListModels(ctx context.Context, ownerID string) ([]modellab.Model, error)
	// ListOwnModels returns ownerID's private models only, sorted alike.
	ListOwnModels(ctx context.Context, ownerID string) ([]modellab.Model, error)
	GetModel(ctx context.Context, id string) (modellab.Model, error)
	// ModelsByIDs returns the existing models among ids in one query.
	ModelsByIDs(ctx context.Context, ids []string) ([]modellab.Model, error)
	CreateModel(ctx context.Context, m *modellab.Model) error
	UpdateModel(ctx context.Context, m *modellab.Model) error
	DeleteModel(ctx context.Context, id string) error

	// ListServers returns ownerID's servers sorted by name (byte order) then id.
	ListServers(ctx context.Context, ownerID string) ([]modellab.Server, error)
	GetServer(ctx context.Context, id string) (modellab.Server, error)
	// ServerOwnersOf returns the owners of the servers that run a model.
	ServerOwnersOf(ctx context.Context, modelID string) ([]string, error)
	CreateServer(ctx context.Context, s *modellab.Server) error
	UpdateServer(ctx context.Context, s *modellab.Server) error
	DeleteServer(ctx context.Context, id string) error

	// InsertEvents stores all events or none.
	InsertEvents(ctx context.Context, events []modellab.Event) error
	// Analytics aggregates userID's events; its queries run concurrently.
	Analytics(ctx context.Context, userID string, q modellab.AnalyticsQuery) (modellab.AnalyticsResult, error)

	AcademyStore
	// ListRuns returns ownerID's runs, newest first, with their latest
	// values.
	ListRuns(ctx context.Context, ownerID string) ([]modellab.Run, error)
	GetRun(ctx context.Context, id string) (modellab.Run, error)
	CreateRun(ctx context.Context, r *modellab.Run) error
	// UpdateRun writes the name, status, end and updated_at of a run.
	UpdateRun(ctx context.Context, r *modellab.Run) error
	// DeleteRun removes a run and its metrics.
	DeleteRun(ctx context.Context, id string) error
	// IngestMetrics stores all points or none, if the run is b.OwnerID's
	// (else ENOTFOUND), and keeps the run's last_step and latest current.
	IngestMetrics(ctx context.Context, b modellab.MetricBatch) error
	// MetricHistory reads a run's owner, status, last step and the points
	// q selects (not downsampled) in one statement.
	MetricHistory(ctx context.Context, id string, q modellab.MetricQuery) (modellab.RunHistory, error)
	// ModelByName returns the model of that name ownerID may see, their
	// private one before a global one of the same name.
	ModelByName(ctx context.Context, ownerID, name string) (modellab.Model, error)
	CreateConversation(ctx context.Context, c *modellab.Conversation) error
	// ListConversations returns ownerID's conversations, newest first.
	ListConversations(ctx context.Context, ownerID string) ([]modellab.Conversation, error)
	GetConversation(ctx context.Context, id string) (modellab.Conversation, error)
	DeleteConversation(ctx context.Context, id string) error
	// ListMessages returns a conversation's messages in order.
	ListMessages(ctx context.Context, conversationID string) ([]modellab.Message, error)
	// AddMessages appends msgs in one transaction (setting their IDs and
	// times) and titles an untitled conversation with title.
	AddMessages(ctx context.Context, conversationID string, msgs []modellab.Message, title string) error
	// UpdateMessage writes a message's content and status.
	UpdateMessage(ctx context.Context, m *modellab.Message) error
}
