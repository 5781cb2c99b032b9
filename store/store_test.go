package store_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/store"
)

// opener opens a fresh, migrated, empty database for one test.
type opener func(t *testing.T, opts store.Options) *store.DB

func openURL(t *testing.T, url string, opts store.Options) *store.DB {
	t.Helper()
	ctx := context.Background()
	if opts.QueryTimeout == 0 {
		// The race detector slows the pure-Go SQLite down tenfold; the
		// deadline itself is tested with an explicit tiny value.
		opts.QueryTimeout = time.Minute
	}
	db, err := store.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func openSQLite(t *testing.T, opts store.Options) *store.DB {
	return openURL(t, "sqlite://"+filepath.Join(t.TempDir(), "test.db"), opts)
}

// postgresOpener makes one database for t and a schema in it per test.
func postgresOpener(t *testing.T) opener {
	base := testpg.URL(t)
	return func(t *testing.T, opts store.Options) *store.DB {
		return openURL(t, testpg.SchemaURL(t, base), opts)
	}
}

var engines = []struct {
	name   string
	opener func(t *testing.T) opener
}{
	{"sqlite", func(*testing.T) opener { return openSQLite }},
	{"postgres", postgresOpener},
}

func TestStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			testStore(t, e.opener(t))
		})
	}
}

// testStore is the one suite that both engines must pass.
func testStore(t *testing.T, open opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"Migrate", testMigrate},
		{"Users", testUsers},
		{"Tokens", testTokens},
		{"ModelCRUD", testModelCRUD},
		{"ModelUniqueness", testModelUniqueness},
		{"ListModels", testListModels},
		{"ModelsByIDs", testModelsByIDs},
		{"DeleteModelKeepsServers", testDeleteModelKeepsServers},
		{"Servers", testServers},
		{"InsertEvents", testInsertEvents},
		{"Analytics", testAnalytics},
		{"Runs", testRuns},
		{"IngestMetrics", testIngestMetrics},
		{"MetricHistory", testMetricHistory},
		{"Unavailable", testUnavailable},
		{"Conversations", testConversations},
		{"Messages", testMessages},
		{"ModelByName", testModelByName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

func code(err error) string { return modellab.ErrorCode(err) }

func ptr[T any](v T) *T { return &v }

func mustUser(t *testing.T, db *store.DB, name string) modellab.User {
	t.Helper()
	u := modellab.User{Name: name}
	if _, err := db.CreateUser(context.Background(), &u); err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func mustModel(t *testing.T, db *store.DB, m modellab.Model) modellab.Model {
	t.Helper()
	if m.Provider == "" {
		m.Provider = "local"
	}
	if m.Visibility == "" {
		m.Visibility = modellab.VisibilityPrivate
		if m.OwnerID == nil {
			m.Visibility = modellab.VisibilityGlobal
		}
	}
	if err := db.CreateModel(context.Background(), &m); err != nil {
		t.Fatalf("CreateModel(%q): %v", m.Name, err)
	}
	return m
}

func testMigrate(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		t.Fatalf("Empty() = %v, %v; want true", empty, err)
	}
	mustUser(t, db, "someone")
	if empty, err := db.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty() after a user = %v, %v; want false", empty, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testUsers(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := modellab.User{Name: "ada", Admin: true}
	token, err := db.CreateUser(ctx, &u)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if !modellab.ValidID(u.ID) || u.ID[:4] != modellab.PrefixUser {
		t.Errorf("ID = %q, want a %s ID", u.ID, modellab.PrefixUser)
	}
	if u.CreatedAt.IsZero() || u.CreatedAt.Location() != time.UTC || u.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v, want UTC truncated to microseconds", u.CreatedAt)
	}
	if token == "" {
		t.Fatal("empty token")
	}
	got, tok, err := db.TokenByHash(ctx, modellab.HashToken(token))
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if !reflect.DeepEqual(got, u) {
		t.Errorf("TokenByHash = %+v, want %+v", got, u)
	}
	if !strings.HasPrefix(tok.ID, modellab.PrefixToken) || tok.UserID != u.ID || tok.ExpiresAt != nil {
		t.Errorf("TokenByHash token = %+v, want a %s ID of %s that never expires", tok, modellab.PrefixToken, u.ID)
	}
	if _, _, err := db.TokenByHash(ctx, token); code(err) != modellab.ENOTFOUND {
		t.Errorf("lookup by the plaintext token: err = %v, want not_found", err)
	}
	if _, err := db.CreateUser(ctx, &modellab.User{Name: ""}); code(err) != modellab.EINVALID {
		t.Errorf("CreateUser with no name: err = %v, want invalid_argument", err)
	}
}

func testModelCRUD(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := mustUser(t, db, "owner")
	m := mustModel(t, db, modellab.Model{Name: "llama-3-8b", Provider: "meta", BaseModel: "llama-3",
		Description: "line one\nline two", ContextLength: ptr[int64](8192), OwnerID: &u.ID})
	if m.ID == "" || m.CreatedAt.IsZero() || !m.UpdatedAt.Equal(m.CreatedAt) {
		t.Fatalf("CreateModel did not set ID and times: %+v", m)
	}
	got, err := db.GetModel(ctx, m.ID)
	if err != nil {
		t.Fatalf("GetModel: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("GetModel = %+v\nwant %+v", got, m)
	}

	time.Sleep(2 * time.Millisecond)
	m.Description = "changed"
	m.ContextLength = nil
	if err := db.UpdateModel(ctx, &m); err != nil {
		t.Fatalf("UpdateModel: %v", err)
	}
	if !m.UpdatedAt.After(m.CreatedAt) {
		t.Errorf("UpdatedAt %v not after CreatedAt %v", m.UpdatedAt, m.CreatedAt)
	}
	got, err = db.GetModel(ctx, m.ID)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("GetModel after update = %+v, %v\nwant %+v", got, err, m)
	}

	// Made global: loses its owner.
	m.Visibility, m.OwnerID = modellab.VisibilityGlobal, nil
	if err := db.UpdateModel(ctx, &m); err != nil {
		t.Fatalf("UpdateModel to global: %v", err)
	}
	if got, _ := db.GetModel(ctx, m.ID); got.OwnerID != nil || got.Visibility != modellab.VisibilityGlobal {
		t.Errorf("after making global: %+v", got)
	}

	if err := db.DeleteModel(ctx, m.ID); err != nil {
		t.Fatalf("DeleteModel: %v", err)
	}
	if _, err := db.GetModel(ctx, m.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("GetModel after delete: err = %v, want not_found", err)
	}
	if err := db.DeleteModel(ctx, m.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("second DeleteModel: err = %v, want not_found", err)
	}
	if err := db.UpdateModel(ctx, &m); code(err) != modellab.ENOTFOUND {
		t.Errorf("UpdateModel of a deleted model: err = %v, want not_found", err)
	}
	bad := modellab.Model{Name: "x", Provider: "p", Visibility: modellab.VisibilityPrivate, OwnerID: ptr("usr_nobody")}
	if err := db.CreateModel(ctx, &bad); code(err) != modellab.EINVALID {
		t.Errorf("CreateModel with an unknown owner: err = %v, want invalid_argument", err)
	}
}

func testModelUniqueness(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a, b := mustUser(t, db, "a"), mustUser(t, db, "b")
	mustModel(t, db, modellab.Model{Name: "same", OwnerID: &a.ID})
	mustModel(t, db, modellab.Model{Name: "global"})
	tests := []struct {
		name  string
		owner *string
		want  string
	}{
		{"same", &a.ID, modellab.ECONFLICT},   // same owner, same name
		{"same", &b.ID, ""},                   // another owner
		{"same", nil, ""},                     // global may share a private name
		{"global", nil, modellab.ECONFLICT},   // globals are unique among themselves
		{"global", &a.ID, ""},                 // a private copy of a global name
		{"Same", &a.ID, ""},                   // names are case-sensitive
		{"global", &b.ID, ""},                 //
		{"global", &b.ID, modellab.ECONFLICT}, // ... but only once
	}
	for i, tt := range tests {
		vis := modellab.VisibilityPrivate
		if tt.owner == nil {
			vis = modellab.VisibilityGlobal
		}
		m := modellab.Model{Name: tt.name, Provider: "p", Visibility: vis, OwnerID: tt.owner}
		err := db.CreateModel(ctx, &m)
		if code(err) != tt.want {
			t.Errorf("%d: CreateModel(%q, owner %v) err = %v, want code %q", i, tt.name, tt.owner != nil, err, tt.want)
		}
		if tt.want == modellab.ECONFLICT && modellab.ErrorMessage(err) == "" {
			t.Errorf("%d: conflict without a message", i)
		}
	}
	// Renaming onto an existing name conflicts too.
	m := mustModel(t, db, modellab.Model{Name: "other", OwnerID: &a.ID})
	m.Name = "same"
	if err := db.UpdateModel(ctx, &m); code(err) != modellab.ECONFLICT {
		t.Errorf("rename onto an existing name: err = %v, want conflict", err)
	}
}

func names(ms []modellab.Model) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func testListModels(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a, b := mustUser(t, db, "a"), mustUser(t, db, "b")
	mustModel(t, db, modellab.Model{Name: "é"})
	mustModel(t, db, modellab.Model{Name: "B"})
	mustModel(t, db, modellab.Model{ID: "mdl_2", Name: "dup"})
	mustModel(t, db, modellab.Model{ID: "mdl_1", Name: "dup", OwnerID: &a.ID})
	mustModel(t, db, modellab.Model{Name: "a", OwnerID: &a.ID})
	mustModel(t, db, modellab.Model{Name: "Z", OwnerID: &b.ID})

	tests := []struct {
		owner string
		want  []string
	}{
		{"", []string{"B", "dup", "é"}},
		{a.ID, []string{"B", "a", "dup", "dup", "é"}},
		{b.ID, []string{"B", "Z", "dup", "é"}},
		{"usr_nobody", []string{"B", "dup", "é"}},
	}
	for _, tt := range tests {
		got, err := db.ListModels(ctx, tt.owner)
		if err != nil {
			t.Fatalf("ListModels(%q): %v", tt.owner, err)
		}
		if !reflect.DeepEqual(names(got), tt.want) {
			t.Errorf("ListModels(%q) = %q, want %q", tt.owner, names(got), tt.want)
		}
	}
	got, _ := db.ListModels(ctx, a.ID)
	if got[2].ID != "mdl_1" || got[3].ID != "mdl_2" {
		t.Errorf("equal names not ordered by id: %s, %s", got[2].ID, got[3].ID)
	}
}

func testModelsByIDs(t *testing.T, open opener) {
	var queries atomic.Int64
	db := open(t, store.Options{OnQuery: func(time.Duration) { queries.Add(1) }})
	ctx := context.Background()
	u := mustUser(t, db, "u")
	var ids []string
	for _, n := range []string{"m1", "m2", "m3"} {
		ids = append(ids, mustModel(t, db, modellab.Model{Name: n, OwnerID: &u.ID}).ID)
	}
	for _, tt := range []struct {
		ids     []string
		want    int
		queries int64
	}{
		{nil, 0, 0},
		{[]string{ids[0]}, 1, 1},
		{[]string{ids[2], "mdl_missing", ids[0], ids[2], ids[1]}, 3, 1},
	} {
		before := queries.Load()
		got, err := db.ModelsByIDs(ctx, tt.ids)
		if err != nil {
			t.Fatalf("ModelsByIDs: %v", err)
		}
		if n := queries.Load() - before; n != tt.queries {
			t.Errorf("ModelsByIDs(%d ids) sent %d statements, want %d", len(tt.ids), n, tt.queries)
		}
		if len(got) != tt.want || got == nil {
			t.Errorf("ModelsByIDs(%v) = %d models (nil %v), want %d", tt.ids, len(got), got == nil, tt.want)
		}
	}
}

func testDeleteModelKeepsServers(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := mustUser(t, db, "u")
	m := mustModel(t, db, modellab.Model{Name: "m", OwnerID: &u.ID})
	s := modellab.Server{Name: "s", ModelID: &m.ID, Status: modellab.StatusRunning, OwnerID: u.ID}
	if err := db.CreateServer(ctx, &s); err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if err := db.DeleteModel(ctx, m.ID); err != nil {
		t.Fatalf("DeleteModel: %v", err)
	}
	got, err := db.GetServer(ctx, s.ID)
	if err != nil {
		t.Fatalf("GetServer: %v", err)
	}
	if got.ModelID != nil {
		t.Errorf("server model_id = %q after the model was deleted, want nil", *got.ModelID)
	}
}

func testServers(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a, b := mustUser(t, db, "a"), mustUser(t, db, "b")
	m := mustModel(t, db, modellab.Model{Name: "m", OwnerID: &a.ID})
	hb := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	s := modellab.Server{Name: "gpu-box", ModelID: &m.ID, Status: modellab.StatusStarting,
		Endpoint: "http://10.0.0.1:8000", GPU: "H100", LastHeartbeat: &hb, OwnerID: a.ID}
	if err := db.CreateServer(ctx, &s); err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if want := hb.UTC().Truncate(time.Microsecond); !s.LastHeartbeat.Equal(want) || s.LastHeartbeat.Location() != time.UTC {
		t.Errorf("LastHeartbeat = %v, want %v", s.LastHeartbeat, want)
	}
	got, err := db.GetServer(ctx, s.ID)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("GetServer = %+v, %v\nwant %+v", got, err, s)
	}
	s.Status, s.LastHeartbeat, s.ModelID = modellab.StatusRunning, nil, nil
	if err := db.UpdateServer(ctx, &s); err != nil {
		t.Fatalf("UpdateServer: %v", err)
	}
	if got, _ := db.GetServer(ctx, s.ID); !reflect.DeepEqual(got, s) {
		t.Errorf("after update = %+v\nwant %+v", got, s)
	}

	for _, tt := range []struct {
		name, owner string
		model       *string
		want        string
	}{
		{"gpu-box", a.ID, nil, modellab.ECONFLICT},
		{"gpu-box", b.ID, nil, ""},
		{"B", a.ID, nil, ""},
		{"é", a.ID, nil, ""},
		{"a", a.ID, nil, ""},
		{"bad-model", a.ID, ptr("mdl_missing"), modellab.EINVALID},
	} {
		s := modellab.Server{Name: tt.name, ModelID: tt.model, Status: modellab.StatusStopped, OwnerID: tt.owner}
		if err := db.CreateServer(ctx, &s); code(err) != tt.want {
			t.Errorf("CreateServer(%q): err = %v, want code %q", tt.name, err, tt.want)
		}
	}
	list, err := db.ListServers(ctx, a.ID)
	if err != nil {
		t.Fatalf("ListServers: %v", err)
	}
	var gotNames []string
	for _, s := range list {
		gotNames = append(gotNames, s.Name)
	}
	if want := []string{"B", "a", "gpu-box", "é"}; !reflect.DeepEqual(gotNames, want) {
		t.Errorf("ListServers = %q, want %q", gotNames, want)
	}
	if list, _ := db.ListServers(ctx, "usr_nobody"); list == nil || len(list) != 0 {
		t.Errorf("ListServers of nobody = %#v, want empty non-nil", list)
	}

	if err := db.DeleteServer(ctx, s.ID); err != nil {
		t.Fatalf("DeleteServer: %v", err)
	}
	if _, err := db.GetServer(ctx, s.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("GetServer after delete: err = %v, want not_found", err)
	}
	if err := db.DeleteServer(ctx, s.ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("second DeleteServer: err = %v, want not_found", err)
	}
	if err := db.UpdateServer(ctx, &s); code(err) != modellab.ENOTFOUND {
		t.Errorf("UpdateServer of a deleted server: err = %v, want not_found", err)
	}
}

var t0 = time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)

func ev(user, model string, at time.Duration, in, out int64, lat float64, status string, cost float64) modellab.Event {
	return modellab.Event{UserID: user, ModelID: model, Timestamp: t0.Add(at), InputTokens: in, OutputTokens: out,
		LatencyMS: lat, Status: status, CostUSD: cost}
}

func testInsertEvents(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := mustUser(t, db, "u")
	q := modellab.AnalyticsQuery{From: t0, To: t0.Add(24 * time.Hour), Interval: modellab.IntervalDay}
	count := func() int64 {
		t.Helper()
		res, err := db.Analytics(ctx, u.ID, q)
		if err != nil {
			t.Fatalf("Analytics: %v", err)
		}
		return res.Totals.Requests
	}

	// One row more than a multi-row INSERT holds, the bad one last: the
	// first statement must be rolled back too. (Kept small: the race
	// detector makes the pure-Go SQLite slow.)
	var batch []modellab.Event
	for i := 0; i < 1001; i++ {
		batch = append(batch, ev(u.ID, "mdl_x", time.Duration(i)*time.Second, 1, 1, 10, modellab.EventOK, 0))
	}
	for i, tt := range []struct {
		n   int
		bad func(e *modellab.Event)
	}{
		{len(batch), func(e *modellab.Event) { e.LatencyMS = -1 }},
		{3, func(e *modellab.Event) { e.Status = "weird" }},
		{3, func(e *modellab.Event) { e.InputTokens = -5 }},
		{3, func(e *modellab.Event) { e.CostUSD = -1 }},
	} {
		b := append([]modellab.Event(nil), batch[:tt.n]...)
		tt.bad(&b[len(b)-1])
		if err := db.InsertEvents(ctx, b); code(err) != modellab.EINVALID {
			t.Errorf("%d: InsertEvents with a bad row: err = %v, want invalid_argument", i, err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d: after a failed batch %d events are stored, want 0", i, n)
		}
	}
	if err := db.InsertEvents(ctx, batch); err != nil {
		t.Fatalf("InsertEvents: %v", err)
	}
	if n := count(); n != int64(len(batch)) {
		t.Errorf("stored %d events, want %d", n, len(batch))
	}
	if err := db.InsertEvents(ctx, nil); err != nil {
		t.Errorf("InsertEvents(nil): %v", err)
	}
}

// analyticsFixture stores a small hand-computed data set and returns the
// user whose analytics the tests read.
func analyticsFixture(t *testing.T, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	u1, u2 := mustUser(t, db, "u1"), mustUser(t, db, "u2")
	mustModel(t, db, modellab.Model{ID: "mdl_aaa_global", Name: "gpt"})
	mustModel(t, db, modellab.Model{ID: "mdl_ccc_mine", Name: "mine", OwnerID: &u1.ID})
	mustModel(t, db, modellab.Model{ID: "mdl_ddd_secret", Name: "secret", OwnerID: &u2.ID})
	gone := mustModel(t, db, modellab.Model{ID: "mdl_bbb_gone", Name: "gone", OwnerID: &u1.ID})
	if err := db.DeleteModel(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	m := time.Minute
	events := []modellab.Event{
		ev(u1.ID, "mdl_aaa_global", 10*m, 9, 9, 9999, modellab.EventOK, 9),                       // before from
		ev(u1.ID, "mdl_aaa_global", 30*m, 10, 20, 100, modellab.EventOK, 0.5),                    // == from: in
		ev(u1.ID, "mdl_aaa_global", 40*m, 1, 2, 300, modellab.EventError, 0.25),                  //
		ev(u1.ID, "mdl_ccc_mine", 65*m, 5, 5, 200, modellab.EventOK, 1),                          //
		ev(u1.ID, "mdl_ddd_secret", 70*m, 0, 0, 50, modellab.EventOK, 0),                         // another's private model
		ev(u1.ID, "mdl_bbb_gone", 180*m-time.Millisecond, 100, 0, 1000, modellab.EventOK, 0.125), // deleted model
		ev(u1.ID, "mdl_aaa_global", 180*m, 9, 9, 9999, modellab.EventOK, 9),                      // == to: out
		ev(u2.ID, "mdl_aaa_global", 60*m, 9, 9, 9999, modellab.EventOK, 9),                       // another user
	}
	if err := db.InsertEvents(ctx, events); err != nil {
		t.Fatalf("InsertEvents: %v", err)
	}
	return u1.ID
}

func testAnalytics(t *testing.T, open opener) {
	db := open(t, store.Options{})
	user := analyticsFixture(t, db)
	for _, tt := range analyticsCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Analytics(context.Background(), user, tt.q)
			if err != nil {
				t.Fatalf("Analytics: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Analytics =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	if _, err := db.Analytics(context.Background(), user, modellab.AnalyticsQuery{From: t0, To: t0, Interval: "day"}); code(err) != modellab.EINVALID {
		t.Errorf("empty range: err = %v, want invalid_argument", err)
	}
}

func analyticsCases() []struct {
	name string
	q    modellab.AnalyticsQuery
	want modellab.AnalyticsResult
} {
	h := time.Hour
	from, to := t0.Add(30*time.Minute), t0.Add(3*h)
	all := modellab.AnalyticsQuery{From: from, To: to, Interval: modellab.IntervalHour}
	one := all
	one.ModelID = "mdl_aaa_global"
	empty := modellab.AnalyticsQuery{From: t0.Add(-48 * h), To: t0.Add(-h), Interval: modellab.IntervalDay}
	daily := modellab.AnalyticsQuery{From: t0.Add(-h), To: t0.Add(24 * h), Interval: modellab.IntervalDay}
	totals := modellab.AnalyticsTotals{Requests: 5, Errors: 1, InputTokens: 116, OutputTokens: 27,
		CostUSD: 1.875, AvgLatencyMS: 330, P95LatencyMS: 1000}
	byModel := []modellab.ModelUsage{
		{ModelID: "mdl_aaa_global", ModelName: "gpt", Requests: 2, Errors: 1, InputTokens: 11, OutputTokens: 22, CostUSD: 0.75, AvgLatencyMS: 200},
		{ModelID: "mdl_bbb_gone", ModelName: "", Requests: 1, InputTokens: 100, CostUSD: 0.125, AvgLatencyMS: 1000},
		{ModelID: "mdl_ccc_mine", ModelName: "mine", Requests: 1, InputTokens: 5, OutputTokens: 5, CostUSD: 1, AvgLatencyMS: 200},
		{ModelID: "mdl_ddd_secret", ModelName: "", Requests: 1, AvgLatencyMS: 50},
	}
	return []struct {
		name string
		q    modellab.AnalyticsQuery
		want modellab.AnalyticsResult
	}{
		{"hourly", all, modellab.AnalyticsResult{From: from, To: to, Interval: "hour", Totals: totals, ByModel: byModel,
			Series: []modellab.SeriesPoint{
				{T: t0, Requests: 2, Errors: 1, Tokens: 33, AvgLatencyMS: 200},
				{T: t0.Add(h), Requests: 2, Tokens: 10, AvgLatencyMS: 125},
				{T: t0.Add(2 * h), Requests: 1, Tokens: 100, AvgLatencyMS: 1000},
			}}},
		{"one model", one, modellab.AnalyticsResult{From: from, To: to, Interval: "hour",
			Totals:  modellab.AnalyticsTotals{Requests: 2, Errors: 1, InputTokens: 11, OutputTokens: 22, CostUSD: 0.75, AvgLatencyMS: 200, P95LatencyMS: 300},
			ByModel: byModel[:1],
			Series: []modellab.SeriesPoint{
				{T: t0, Requests: 2, Errors: 1, Tokens: 33, AvgLatencyMS: 200},
				{T: t0.Add(h)},
				{T: t0.Add(2 * h)},
			}}},
		{"daily zero-filled", daily, modellab.AnalyticsResult{From: daily.From, To: daily.To, Interval: "day",
			Totals: modellab.AnalyticsTotals{Requests: 7, Errors: 1, InputTokens: 134, OutputTokens: 45,
				CostUSD: 19.875, AvgLatencyMS: (9999*2 + 1650) / 7.0, P95LatencyMS: 9999},
			ByModel: []modellab.ModelUsage{
				{ModelID: "mdl_aaa_global", ModelName: "gpt", Requests: 4, Errors: 1, InputTokens: 29, OutputTokens: 40, CostUSD: 18.75, AvgLatencyMS: (9999*2 + 400) / 4.0},
				byModel[1], byModel[2], byModel[3],
			},
			Series: []modellab.SeriesPoint{
				{T: t0.Add(-24 * h)},
				{T: t0, Requests: 7, Errors: 1, Tokens: 179, AvgLatencyMS: (9999*2 + 1650) / 7.0},
			}}},
		{"empty", empty, modellab.AnalyticsResult{From: empty.From, To: empty.To, Interval: "day",
			ByModel: []modellab.ModelUsage{},
			Series:  []modellab.SeriesPoint{{T: t0.Add(-48 * h)}, {T: t0.Add(-24 * h)}}}},
	}
}

func testUnavailable(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	u := mustUser(t, db, "u")

	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := db.ListModels(expired, u.ID); code(err) != modellab.EUNAVAILABLE {
		t.Errorf("ListModels with an expired context: err = %v, want unavailable", err)
	}
	if err := db.InsertEvents(expired, []modellab.Event{ev(u.ID, "m", 0, 1, 1, 1, "ok", 0)}); code(err) != modellab.EUNAVAILABLE {
		t.Errorf("InsertEvents with an expired context: err = %v, want unavailable", err)
	}

	// A statement that outlives QueryTimeout.
	slow := open(t, store.Options{QueryTimeout: time.Nanosecond})
	if _, err := slow.ListModels(ctx, ""); code(err) != modellab.EUNAVAILABLE {
		t.Errorf("ListModels past QueryTimeout: err = %v, want unavailable", err)
	}

	db.Close()
	q := modellab.AnalyticsQuery{From: t0, To: t0.Add(time.Hour), Interval: "hour"}
	for name, call := range map[string]func() error{
		"Ping":         func() error { return db.Ping(ctx) },
		"CreateUser":   func() error { _, err := db.CreateUser(ctx, &modellab.User{Name: "x"}); return err },
		"TokenByHash":  func() error { _, _, err := db.TokenByHash(ctx, "h"); return err },
		"ListTokens":   func() error { _, err := db.ListTokens(ctx, u.ID); return err },
		"DeleteToken":  func() error { _, err := db.DeleteToken(ctx, "tok_x"); return err },
		"ListModels":   func() error { _, err := db.ListModels(ctx, ""); return err },
		"GetModel":     func() error { _, err := db.GetModel(ctx, "mdl_x"); return err },
		"DeleteServer": func() error { return db.DeleteServer(ctx, "srv_x") },
		"InsertEvents": func() error { return db.InsertEvents(ctx, []modellab.Event{ev(u.ID, "m", 0, 1, 1, 1, "ok", 0)}) },
		"Analytics":    func() error { _, err := db.Analytics(ctx, u.ID, q); return err },
		"Empty":        func() error { _, err := db.Empty(ctx); return err },
	} {
		if err := call(); code(err) != modellab.EUNAVAILABLE {
			t.Errorf("%s on a closed DB: err = %v, want unavailable", name, err)
		}
	}
}

// TestEnginesAgree runs the same data through both engines and compares
// every result field by field.
func TestEnginesAgree(t *testing.T) {
	ctx := context.Background()
	var results [2][]any
	for i, e := range engines {
		db := e.opener(t)(t, store.Options{})
		user := analyticsFixture(t, db)
		// Latencies that are not round, many per bucket, to catch any
		// difference in percentile or averaging.
		var events []modellab.Event
		for k := 0; k < 997; k++ {
			events = append(events, ev(user, []string{"mdl_aaa_global", "mdl_ccc_mine"}[k%2],
				time.Duration(k)*7*time.Minute, int64(k%13), int64(k%7), float64((k*7919)%1000)/8, []string{"ok", "ok", "error"}[k%3], float64(k%5)/4))
		}
		if err := db.InsertEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		for _, q := range []modellab.AnalyticsQuery{
			{From: t0, To: t0.Add(5 * 24 * time.Hour), Interval: "day"},
			{From: t0.Add(90 * time.Minute), To: t0.Add(50 * time.Hour), Interval: "hour"},
			{From: t0, To: t0.Add(7 * 24 * time.Hour), Interval: "hour", ModelID: "mdl_ccc_mine"},
		} {
			res, err := db.Analytics(ctx, user, q)
			if err != nil {
				t.Fatal(err)
			}
			results[i] = append(results[i], res)
		}
		models, err := db.ListModels(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for j := range models { // times differ between runs
			models[j].CreatedAt, models[j].UpdatedAt = time.Time{}, time.Time{}
		}
		results[i] = append(results[i], models)
	}
	for k := range results[0] {
		if !reflect.DeepEqual(results[0][k], results[1][k]) {
			t.Errorf("result %d differs:\nsqlite   %+v\npostgres %+v", k, results[0][k], results[1][k])
		}
	}
}
