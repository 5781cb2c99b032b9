package store_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

// TestSeedInference: the demo user's running servers point at the
// configured inference server and run its model; without one they have no
// endpoint. Nothing else in the data set changes.
func TestSeedInference(t *testing.T) {
	t.Parallel()
	opts := store.SeedOptions{Users: 4, Models: 30, GlobalModels: 5, Servers: 90, Events: 500, Days: 3, Now: seedNow, RandSeed: 7}
	seed := func(inf store.InferenceSeed) (*store.DB, store.SeedResult) {
		db := openSQLite(t, store.Options{})
		o := opts
		o.Inference = inf
		res, err := store.Seed(context.Background(), db, o)
		if err != nil {
			t.Fatal(err)
		}
		return db, res
	}
	plainDB, plain := seed(store.InferenceSeed{})
	chatDB, chat := seed(store.InferenceSeed{URL: "http://localhost:11434/v1", Model: "llama3.2"})
	a, b := takeSnapshot(t, plainDB, plain), takeSnapshot(t, chatDB, chat)
	if !reflect.DeepEqual(a.Analytics, b.Analytics) || !reflect.DeepEqual(a.Users, b.Users) {
		t.Errorf("the inference option changed the events or the users")
	}
	if len(b.Models) != len(a.Models)+1 {
		t.Fatalf("models: %d with the option, %d without; want one more", len(b.Models), len(a.Models))
	}
	var m modellab.Model
	for _, x := range b.Models {
		if x.Name == "llama3.2" {
			m = x
		}
	}
	if m.BaseModel != "llama3.2" || m.OwnerID == nil || *m.OwnerID != chat.Users[0].ID {
		t.Fatalf("the inference model: %+v", m)
	}
	running := 0
	for i, sv := range b.Servers {
		old := a.Servers[i]
		if sv.Status != modellab.StatusRunning {
			if !reflect.DeepEqual(sv, old) {
				t.Errorf("a server not running changed: %+v", sv)
			}
			continue
		}
		running++
		if sv.Endpoint != "http://localhost:11434/v1" || sv.ModelID == nil || *sv.ModelID != m.ID {
			t.Errorf("running server with the option: %+v", sv)
		}
		if old.Endpoint != "" {
			t.Errorf("running server without the option has endpoint %q, want none", old.Endpoint)
		}
	}
	if running == 0 {
		t.Fatal("the demo user has no running server to check")
	}
	// Other users keep their seeded servers.
	var pa, pb []modellab.Server
	for _, u := range plain.Users[1:] {
		x, _ := plainDB.ListServers(context.Background(), u.ID)
		y, _ := chatDB.ListServers(context.Background(), u.ID)
		pa, pb = append(pa, x...), append(pb, y...)
	}
	if len(pa) == 0 || !reflect.DeepEqual(pa, pb) {
		t.Errorf("another user's servers: %d, changed %v", len(pa), !reflect.DeepEqual(pa, pb))
	}
}
