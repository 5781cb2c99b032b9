package store

import (
	"crypto/sha256"
	"fmt"

	"github.com/modellab/modellab"
)

// InferenceSeed is the inference server the demo user's running servers
// point at, so that the chat has something real to talk to: the base URL
// of an OpenAI-compatible API (Ollama's http://localhost:11434/v1, vLLM,
// llama.cpp server…) and the model to ask it for.
type InferenceSeed struct {
	URL   string
	Model string
}

// seedInference points the demo user's running servers at opts.Inference.
// With a URL they all run one model of the demo user, named after the
// upstream model and served as it (its base model). Without one they get
// no endpoint: the seeded addresses are made up, and a chat sent there
// would wait for a connection that never comes; the chat page says plainly
// that no running server can be reached. It draws nothing from the
// seeder's random source, so the rest of the data set stays the same.
func seedInference(opts SeedOptions, users []modellab.User, models []seedModel, servers []modellab.Server) []seedModel {
	if len(users) == 0 {
		return models
	}
	demo := users[0].ID
	inf := opts.Inference
	var modelID *string
	if inf.URL != "" {
		m := inferenceModel(opts, demo, models)
		models = append(models, seedModel{m: m})
		modelID = &models[len(models)-1].m.ID
	}
	for i := range servers {
		sv := &servers[i]
		if sv.OwnerID != demo || sv.Status != modellab.StatusRunning {
			continue
		}
		sv.Endpoint = inf.URL
		if modelID != nil {
			sv.ModelID = modelID
		}
	}
	return models
}

// inferenceModel is the demo user's model of the inference server, with a
// name no other model of theirs has.
func inferenceModel(opts SeedOptions, owner string, models []seedModel) modellab.Model {
	name := opts.Inference.Model
	if name == "" {
		name = "chat"
	}
	taken := map[string]bool{}
	for _, sm := range models {
		if sm.m.OwnerID != nil && *sm.m.OwnerID == owner {
			taken[sm.m.Name] = true
		}
	}
	for base, k := name, 2; taken[name]; k++ {
		name = fmt.Sprintf("%s-%d", base, k)
	}
	sum := sha256.Sum256([]byte("demo inference model\x00" + opts.Inference.URL + "\x00" + opts.Inference.Model))
	at := opts.Now.UTC().Truncate(1000)
	o := owner
	return modellab.Model{
		ID: modellab.IDFromBytes(modellab.PrefixModel, sum[:]), Name: name, Provider: "local",
		BaseModel: opts.Inference.Model, Visibility: modellab.VisibilityPrivate, OwnerID: &o,
		Description: "The demo's inference server, " + opts.Inference.URL + ": chat with it on the Chat page.",
		CreatedAt:   at, UpdatedAt: at,
	}
}
