package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modellab/modellab"
)

// SeedOptions sizes the demo data set. Everything but the tokens follows
// from the options: the same options (Now and RandSeed included) give the
// same IDs, names and events.
type SeedOptions struct {
	Users        int
	Models       int // all models, GlobalModels of them global
	GlobalModels int
	Servers      int
	Events       int
	Days         int // events spread over the Days before Now
	Runs         int // training runs, with their metrics
	RunSteps     int // points per metric key of a finished run
	Now          time.Time
	RandSeed     int64
	// IgnoreUsers are IDs of existing users that do not make the database
	// non-empty (the admin user serve creates for ADMIN_TOKEN).
	IgnoreUsers []string
	// Inference is what the demo user's running servers point at (see
	// InferenceSeed); zero: no endpoint.
	Inference InferenceSeed
}

// DefaultSeedOptions is the realistic size the load tests run against.
func DefaultSeedOptions() SeedOptions {
	return SeedOptions{Users: 1000, Models: 5000, GlobalModels: 200, Servers: 2000,
		Events: 1_000_000, Days: 90, Runs: 200, RunSteps: 1000, Now: time.Now(), RandSeed: 1}
}

// DemoSeedOptions is small enough for `serve --demo` to seed at start.
func DemoSeedOptions() SeedOptions {
	return SeedOptions{Users: 20, Models: 300, GlobalModels: 40, Servers: 120,
		Events: 20_000, Days: 14, Runs: 12, RunSteps: 600, Now: time.Now(), RandSeed: 1}
}

// SeedTokenName names the tokens the seed makes.
const SeedTokenName = "seed"

// SeededUser is a created user with its plaintext token.
type SeededUser struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Admin bool   `json:"admin"`
	Token string `json:"token"`
}

// SeedResult says what Seed created.
type SeedResult struct {
	Users   []SeededUser `json:"users"`
	Models  int          `json:"models"`
	Servers int          `json:"servers"`
	Events  int          `json:"events"`
	Runs    int          `json:"runs"`
	// MetricPoints is the number of points of all the runs.
	MetricPoints int `json:"metric_points"`
}

// demoEventShare is the demo user's share of events: a heavy user, so
// that its uncached analytics cost what a real power user's would.
const demoEventShare = 0.22

type modelFamily struct {
	name, provider string
	sizes          []string
	ctx            int64
	priceIn        float64 // USD per million tokens
	priceOut       float64
}

var families = []modelFamily{
	{"llama-3", "meta", []string{"8b", "70b"}, 8192, 0.2, 0.6},
	{"llama-3.1", "meta", []string{"8b", "70b", "405b"}, 131072, 0.3, 0.9},
	{"mistral", "mistral", []string{"7b"}, 32768, 0.15, 0.45},
	{"mixtral", "mistral", []string{"8x7b", "8x22b"}, 65536, 0.6, 1.8},
	{"gemma-2", "google", []string{"2b", "9b", "27b"}, 8192, 0.1, 0.3},
	{"gemini-1.5", "google", []string{"flash", "pro"}, 1048576, 0.35, 1.05},
	{"gpt-4o", "openai", []string{"mini", "2024-08"}, 128000, 2.5, 10},
	{"gpt-3.5", "openai", []string{"turbo"}, 16385, 0.5, 1.5},
	{"claude-3", "anthropic", []string{"haiku", "sonnet", "opus"}, 200000, 3, 15},
	{"claude-3-5", "anthropic", []string{"sonnet", "haiku"}, 200000, 3, 15},
	{"qwen2", "local", []string{"7b", "72b"}, 32768, 0, 0},
	{"phi-3", "local", []string{"mini", "medium"}, 4096, 0, 0},
}

var (
	variants   = []string{"instruct", "chat", "base", "code", "rag", "summarize"}
	firstNames = []string{"ada", "alan", "grace", "linus", "barbara", "ken", "margaret", "dennis", "radia", "edsger",
		"frances", "john", "katherine", "tim", "hedy", "donald", "sophie", "claude", "yann", "fei-fei"}
	lastNames = []string{"lovelace", "turing", "hopper", "torvalds", "liskov", "thompson", "hamilton", "ritchie",
		"perlman", "dijkstra", "allen", "mccarthy", "johnson", "berners-lee", "lamarr", "knuth", "wilson", "shannon", "lecun", "li"}
	gpus       = []string{"H100", "H100", "A100-80GB", "A100-80GB", "A100-40GB", "L4", "L40S", "A10G", "T4", "RTX-4090"}
	serverRole = []string{"inference", "eval", "batch", "canary", "staging", "prod"}
	// Share of traffic per UTC hour: a working day peaking in the afternoon.
	hourWeight = [24]float64{0.25, 0.2, 0.15, 0.15, 0.15, 0.2, 0.3, 0.45, 0.65, 0.8, 0.9, 0.95,
		0.95, 1, 1, 1, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3}
)

type seedModel struct {
	m        modellab.Model
	fam      *modelFamily
	latency  float64 // median ms
	priceIn  float64
	priceOut float64
}

// seeder draws the data set. Every draw comes from r in a fixed order
// (users, models, servers, events), which is what makes the data set
// deterministic: keep the order when changing a step.
type seeder struct {
	r     *rand.Rand
	opt   SeedOptions
	start time.Time     // the first day of the events
	days  time.Duration // the span of the events

	users      []modellab.User
	zipfUser   func() int // a user index on the long tail
	models     []seedModel
	owned      [][]int // user -> indexes into models
	globals    []int   // indexes of the global models
	zipfGlobal *rand.Zipf
}

func (s *seeder) id(prefix string) string {
	var b [24]byte
	for i := 0; i < len(b); i += 8 {
		v := s.r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return modellab.IDFromBytes(prefix, b[:20])
}

func tsMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Seed fills an empty database with a deterministic, skewed data set: user
// #1 "demo" (an admin) owns at least 50 servers (fewer only if there are
// fewer) and over 20% of the events; the other users' activity follows a
// long tail. Tokens are NOT deterministic: they are fresh random values on
// every run (a token derived from a public seed would be a known password),
// so callers must keep the ones returned. Seed refuses a database that has
// any row (ECONFLICT).
func Seed(ctx context.Context, db *DB, opts SeedOptions) (SeedResult, error) {
	opts, err := opts.normalized()
	if err != nil {
		return SeedResult{}, err
	}
	if err := db.checkEmpty(ctx, opts.IgnoreUsers); err != nil {
		return SeedResult{}, err
	}
	days := time.Duration(opts.Days) * 24 * time.Hour
	s := &seeder{r: rand.New(rand.NewPCG(uint64(opts.RandSeed), 0x6d6f64656c6c6162)), opt: opts,
		start: opts.Now.Add(-days), days: days}
	res := SeedResult{Users: s.drawUsers()}
	s.drawModels()
	servers := s.drawServers()
	s.models = seedInference(opts, s.users, s.models, servers)
	gen := s.eventGen()

	loadStart := time.Now()
	if err := db.bulkLoad(ctx, s.users, res.Users, s.models, servers, gen); err != nil {
		return SeedResult{}, err
	}
	if err := (&runSeeder{db: db, s: s, users: s.users, models: s.models}).seed(ctx, &res); err != nil {
		return SeedResult{}, err
	}
	res.Models, res.Servers, res.Events = len(s.models), len(servers), gen.n
	db.log.Info("seeded", "users", len(s.users), "models", res.Models, "servers", res.Servers,
		"events", res.Events, "duration", time.Since(loadStart))
	return res, nil
}

// normalized checks the sizes and fills in the defaults.
func (opts SeedOptions) normalized() (SeedOptions, error) {
	if opts.Users < 1 || opts.Models < 0 || opts.GlobalModels < 0 || opts.Servers < 0 || opts.Events < 0 {
		return opts, modellab.Errorf(modellab.EINVALID, "seed needs at least one user and no negative sizes")
	}
	if opts.GlobalModels > opts.Models {
		opts.GlobalModels = opts.Models
	}
	if opts.Days < 1 {
		opts.Days = 1
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC().Truncate(time.Millisecond)
	return opts, nil
}

// checkEmpty answers ECONFLICT when any table of the data set has a row,
// users in ignore aside.
func (db *DB) checkEmpty(ctx context.Context, ignore []string) error {
	var n int64
	where, args := notIn("id", ignore)
	if err := db.get(ctx, "check the database is empty", `SELECT
		(SELECT COUNT(*) FROM (SELECT 1 FROM users`+where+` LIMIT 1) AS a) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM models LIMIT 1) AS b) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM servers LIMIT 1) AS c) +
		(SELECT COUNT(*) FROM (SELECT 1 FROM events LIMIT 1) AS d)`, args, &n); err != nil {
		return err
	}
	if n > 0 {
		return modellab.Errorf(modellab.ECONFLICT, "database is not empty: seed only fills an empty database")
	}
	return nil
}

// notIn is a WHERE clause excluding ids from col, and its arguments; empty
// for no ids.
func notIn(col string, ids []string) (string, []any) {
	if len(ids) == 0 {
		return "", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return " WHERE " + col + " NOT IN (?" + strings.Repeat(", ?", len(ids)-1) + ")", args
}

// drawUsers makes the users, "demo" first, with fresh tokens, and the long
// tail that spreads activity over them.
func (s *seeder) drawUsers() []SeededUser {
	n := s.opt.Users
	s.users = make([]modellab.User, n)
	seeded := make([]SeededUser, n)
	for i := range s.users {
		name := "demo"
		if i > 0 {
			name = firstNames[s.r.IntN(len(firstNames))] + "." + lastNames[s.r.IntN(len(lastNames))]
		}
		s.users[i] = modellab.User{ID: s.id(modellab.PrefixUser), Name: name, Admin: i == 0,
			CreatedAt: tsMicro(s.start.Add(-time.Duration(s.r.Int64N(int64(60 * 24 * time.Hour)))))}
		seeded[i] = SeededUser{ID: s.users[i].ID, Name: name, Admin: s.users[i].Admin, Token: modellab.NewToken()}
	}
	// Long tail: rank k (0-based) of a Zipf draw maps to a shuffled user,
	// so that the heavy users are not simply the first ones.
	if n > 1 {
		z := rand.NewZipf(s.r, 1.15, 3, uint64(n-2))
		perm := s.r.Perm(n - 1)
		s.zipfUser = func() int { return 1 + perm[z.Uint64()] }
	} else {
		s.zipfUser = func() int { return 0 }
	}
	return seeded
}

// drawModels makes the global models first, then the private ones: the
// demo user owns the first of them, the long tail the rest.
func (s *seeder) drawModels() {
	opts := s.opt
	s.models = make([]seedModel, 0, opts.Models)
	s.owned = make([][]int, opts.Users)
	used := map[string]bool{}
	perOwner := make([]int, opts.Users)
	demoModels := min(opts.Models-opts.GlobalModels, max(10, (opts.Models-opts.GlobalModels)/100))
	for i := 0; i < opts.Models; i++ {
		f := &families[s.r.IntN(len(families))]
		size := f.sizes[s.r.IntN(len(f.sizes))]
		variant := variants[s.r.IntN(len(variants))]
		m := modellab.Model{ID: s.id(modellab.PrefixModel), Provider: f.provider, BaseModel: f.name + "-" + size}
		owner := -1
		if i < opts.GlobalModels {
			m.Visibility = modellab.VisibilityGlobal
			m.Name = f.name + "-" + size + "-" + variant
			for k := 2; used[m.Name]; k++ {
				m.Name = fmt.Sprintf("%s-%s-%s-v%d", f.name, size, variant, k)
			}
			used[m.Name] = true
		} else {
			owner = s.zipfUser()
			if i-opts.GlobalModels < demoModels {
				owner = 0
			}
			perOwner[owner]++
			m.Visibility = modellab.VisibilityPrivate
			m.OwnerID = &s.users[owner].ID
			// The per-owner counter keeps names unique per owner.
			m.Name = fmt.Sprintf("%s-%s-%s-ft-%03d", f.name, size, variant, perOwner[owner])
		}
		s.addModel(m, f, size, variant, owner)
	}
	if len(s.globals) > 1 {
		s.zipfGlobal = rand.NewZipf(s.r, 1.3, 2, uint64(len(s.globals)-1))
	}
}

// addModel draws the rest of model m (description, context, dates,
// latency) and files it under its owner (-1: global).
func (s *seeder) addModel(m modellab.Model, f *modelFamily, size, variant string, owner int) {
	m.Description = fmt.Sprintf("%s %s, %s variant, served by %s.", f.name, size, variant, f.provider)
	if s.r.IntN(10) > 0 {
		c := f.ctx
		m.ContextLength = &c
	}
	m.CreatedAt = tsMicro(s.start.Add(-time.Duration(s.r.Int64N(int64(30 * 24 * time.Hour)))))
	m.UpdatedAt = tsMicro(m.CreatedAt.Add(time.Duration(s.r.Int64N(int64(s.days)))))
	sm := seedModel{m: m, fam: f, latency: 150 + 1500*s.r.Float64()*s.r.Float64(), priceIn: f.priceIn, priceOut: f.priceOut}
	if owner < 0 {
		s.globals = append(s.globals, len(s.models))
	} else {
		s.owned[owner] = append(s.owned[owner], len(s.models))
	}
	s.models = append(s.models, sm)
}

// pickModel chooses a model visible to user u, or -1 when none is.
func (s *seeder) pickModel(u int) int {
	own := s.owned[u]
	if len(own) > 0 && (len(s.globals) == 0 || s.r.IntN(10) < 6) {
		// A few own models take most of a user's traffic.
		k := int(float64(len(own)) * math.Pow(s.r.Float64(), 3))
		return own[k]
	}
	switch {
	case len(s.globals) == 0:
		return -1
	case s.zipfGlobal == nil:
		return s.globals[0]
	}
	return s.globals[s.zipfGlobal.Uint64()]
}

// drawServers makes the inference servers: the demo user's first, the long
// tail's after, in a realistic mix of states.
func (s *seeder) drawServers() []modellab.Server {
	opts := s.opt
	servers := make([]modellab.Server, 0, opts.Servers)
	demoServers := min(opts.Servers, max(50, opts.Servers/20))
	serverCount := make([]int, opts.Users)
	for i := 0; i < opts.Servers; i++ {
		owner := s.zipfUser()
		if i < demoServers {
			owner = 0
		}
		serverCount[owner]++
		gpu := gpus[s.r.IntN(len(gpus))]
		sv := modellab.Server{ID: s.id(modellab.PrefixServer), OwnerID: s.users[owner].ID,
			Name:     fmt.Sprintf("%s-%s-%02d", serverRole[s.r.IntN(len(serverRole))], strings.ToLower(gpu), serverCount[owner]),
			Endpoint: fmt.Sprintf("http://10.%d.%d.%d:8000/v1", s.r.IntN(256), s.r.IntN(256), 1+s.r.IntN(254)),
			GPU:      gpu}
		if s.r.IntN(10) > 0 {
			if k := s.pickModel(owner); k >= 0 {
				sv.ModelID = &s.models[k].m.ID
			}
		}
		s.drawServerState(&sv)
		servers = append(servers, sv)
	}
	return servers
}

// drawServerState sets a server's status, heartbeat and dates.
func (s *seeder) drawServerState(sv *modellab.Server) {
	var hb time.Duration
	switch p := s.r.IntN(100); {
	case p < 55:
		sv.Status, hb = modellab.StatusRunning, time.Duration(s.r.Int64N(int64(30*time.Second)))
	case p < 75:
		sv.Status, hb = modellab.StatusStopped, time.Duration(s.r.Int64N(int64(7*24*time.Hour)))
	case p < 87:
		sv.Status, hb = modellab.StatusStarting, -1
	default:
		sv.Status, hb = modellab.StatusError, 5*time.Minute+time.Duration(s.r.Int64N(int64(3*time.Hour)))
	}
	if hb >= 0 {
		t := tsMicro(s.opt.Now.Add(-hb))
		sv.LastHeartbeat = &t
	}
	sv.CreatedAt = tsMicro(s.start.Add(time.Duration(s.r.Int64N(int64(s.days)))))
	sv.UpdatedAt = sv.CreatedAt
	if sv.LastHeartbeat != nil && sv.LastHeartbeat.After(sv.UpdatedAt) {
		sv.UpdatedAt = *sv.LastHeartbeat
	}
}

// eventGen shares the events out per user (the demo user's share, the
// rest on the long tail) and returns the generator that draws them.
func (s *seeder) eventGen() *eventGen {
	opts := s.opt
	perUser := make([]int, opts.Users)
	demoEvents := int(math.Ceil(float64(opts.Events) * demoEventShare))
	if opts.Users == 1 {
		demoEvents = opts.Events
	}
	perUser[0] = demoEvents
	for i := demoEvents; i < opts.Events; i++ {
		perUser[s.zipfUser()]++
	}
	// Users in ID order make the bulk load append to the (user_id, ts)
	// index instead of inserting all over it.
	order := make([]int, opts.Users)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(s.users[a].ID, s.users[b].ID) })
	return &eventGen{s: s, users: s.users, models: s.models, perUser: perUser, order: order,
		pickModel: s.pickModel, start: s.start.UnixMilli(), span: s.days.Milliseconds()}
}

// eventGen produces the events user after user, each user's in time order,
// so that a million of them never sit in memory at once.
type eventGen struct {
	s         *seeder
	users     []modellab.User
	models    []seedModel
	perUser   []int
	order     []int
	pickModel func(u int) int
	start     int64
	span      int64

	next int // index into order
	buf  []modellab.Event
	pos  int
	n    int
	ts   []int64
}

// Next returns the next event, or false when there are no more.
func (g *eventGen) Next() (*modellab.Event, bool) {
	for g.pos >= len(g.buf) {
		if g.next >= len(g.order) {
			return nil, false
		}
		g.fill(g.order[g.next])
		g.next++
	}
	e := &g.buf[g.pos]
	g.pos++
	g.n++
	return e, true
}

func (g *eventGen) fill(u int) {
	r := g.s.r
	g.buf, g.pos = g.buf[:0], 0
	n := g.perUser[u]
	g.ts = g.ts[:0]
	for len(g.ts) < n {
		// Rejection sampling for daily and weekly seasonality, with traffic
		// growing over the period.
		off := r.Int64N(g.span)
		t := time.UnixMilli(g.start + off).UTC()
		w := hourWeight[t.Hour()] * (0.6 + 0.4*float64(off)/float64(g.span))
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 0.55
		}
		if r.Float64() < w {
			g.ts = append(g.ts, g.start+off)
		}
	}
	slices.Sort(g.ts)
	for _, ts := range g.ts {
		k := g.pickModel(u)
		if k < 0 {
			continue
		}
		m := &g.models[k]
		in := clampTokens(math.Exp(math.Log(450)+0.9*r.NormFloat64()), 1, 120_000)
		out := clampTokens(math.Exp(math.Log(180)+0.8*r.NormFloat64()), 1, 8_000)
		lat := m.latency * math.Exp(0.45*r.NormFloat64()) * (1 + float64(out)/600)
		status := modellab.EventOK
		if r.IntN(1000) < 25 {
			status, out = modellab.EventError, 0
			if r.IntN(4) == 0 {
				lat = 30_000 // upstream timeout
			} else {
				lat *= 0.3
			}
		}
		lat = math.Min(math.Round(lat*100)/100, modellab.MaxLatencyMS)
		cost := math.Round((float64(in)*m.priceIn+float64(out)*m.priceOut)/1e6*1e8) / 1e8
		g.buf = append(g.buf, modellab.Event{UserID: g.users[u].ID, ModelID: m.m.ID, Timestamp: time.UnixMilli(ts).UTC(),
			InputTokens: in, OutputTokens: out, LatencyMS: lat, Status: status, CostUSD: cost})
	}
}

func clampTokens(v float64, lo, hi int64) int64 {
	return min(max(int64(math.Round(v)), lo), hi)
}

var (
	userCols      = []string{"id", "name", "admin", "created_at"}
	seedTokenCols = []string{"id", "name", "hash", "user_id", "created_at"}
)

func modelRow(m *modellab.Model) []any {
	return []any{m.ID, m.Name, m.Provider, m.BaseModel, m.Description, m.ContextLength, m.Visibility, m.OwnerID,
		micros(m.CreatedAt), micros(m.UpdatedAt)}
}

func serverRow(s *modellab.Server) []any {
	return []any{s.ID, s.OwnerID, s.Name, s.ModelID, s.Status, s.Endpoint, s.GPU, heartbeat(s), micros(s.CreatedAt), micros(s.UpdatedAt)}
}

// seedTable is one table of the bulk load and its rows, drawn on demand.
type seedTable struct {
	name string
	cols []string
	next func() ([]any, bool)
}

// rowsOf turns n rows, made by row, into a seedTable's next.
func rowsOf(n int, row func(i int) []any) func() ([]any, bool) {
	i := 0
	return func() ([]any, bool) {
		if i >= n {
			return nil, false
		}
		i++
		return row(i - 1), true
	}
}

// seedTables lists the tables in the order foreign keys need.
func seedTables(users []modellab.User, seeded []SeededUser, models []seedModel, servers []modellab.Server, gen *eventGen) []seedTable {
	r := newRollups()
	tables := []seedTable{
		{"users", userCols, rowsOf(len(users), func(i int) []any {
			u := &users[i]
			return []any{u.ID, u.Name, u.Admin, micros(u.CreatedAt)}
		})},
		{"tokens", seedTokenCols, rowsOf(len(users), func(i int) []any {
			return []any{modellab.NewID(modellab.PrefixToken), SeedTokenName, modellab.HashToken(seeded[i].Token),
				users[i].ID, micros(users[i].CreatedAt)}
		})},
		{"models", strings.Split(modelCols, ", "), rowsOf(len(models), func(i int) []any { return modelRow(&models[i].m) })},
		{"servers", strings.Split(serverCols, ", "), rowsOf(len(servers), func(i int) []any { return serverRow(&servers[i]) })},
		{"events", eventCols, func() ([]any, bool) {
			e, ok := gen.Next()
			if !ok {
				return nil, false
			}
			row := eventRow(e)
			r.addRow(row)
			return row, true
		}},
	}
	return append(tables, rollupTables(r)...)
}

// rollupTables load the rollups of the events, after them: their rows are
// known once every event went by, so the tables are made when the first
// of them is loaded.
func rollupTables(r *rollups) []seedTable {
	var tables map[string]rollupTable
	var out []seedTable
	for _, tb := range newRollups().loadTables() { // the tables' names and columns
		next := 0
		out = append(out, seedTable{tb.name, tb.cols, func() ([]any, bool) {
			if tables == nil {
				tables = map[string]rollupTable{}
				for _, t := range r.loadTables() {
					tables[t.name] = t
				}
			}
			t := tables[tb.name]
			if next >= t.n {
				return nil, false
			}
			next++
			return t.row(next - 1), true
		}})
	}
	return out
}

// bulkLoad writes the data set in one transaction: COPY on PostgreSQL,
// prepared multi-row INSERTs on SQLite. No QueryTimeout: it is one long
// job bounded by the caller's context.
func (db *DB) bulkLoad(ctx context.Context, users []modellab.User, seeded []SeededUser,
	models []seedModel, servers []modellab.Server, gen *eventGen) error {
	tables := seedTables(users, seeded, models, servers, gen)
	err := db.inTx(ctx, 0, func(t *tx) error {
		for _, tb := range tables {
			if t.pg != nil {
				start := time.Now()
				_, err := t.pg.CopyFrom(ctx, pgx.Identifier{tb.name}, tb.cols, pgx.CopyFromFunc(func() ([]any, error) {
					row, ok := tb.next()
					if !ok {
						return nil, nil
					}
					return row, nil
				}))
				db.observe(start)
				if err != nil {
					return fmt.Errorf("copy %s: %w", tb.name, err)
				}
				continue
			}
			if err := sqliteBulk(ctx, t, tb.name, tb.cols, tb.next, db.observe); err != nil {
				return fmt.Errorf("insert %s: %w", tb.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fail(err, "seed")
	}
	return db.analyzeAfterSeed(ctx)
}

// analyzeAfterSeed gives the planner fresh statistics; on PostgreSQL
// VACUUM also sets the visibility map that index-only scans need, of the
// events and of the rollups (an analytics read's names come from one of
// usage_models: with the map unset it visits a heap page for every row,
// until autovacuum gets there, which can be after a benchmark has run).
func (db *DB) analyzeAfterSeed(ctx context.Context) error {
	stmts := []string{"ANALYZE"}
	if db.pool != nil {
		stmts = []string{"VACUUM ANALYZE"}
	}
	for _, q := range stmts {
		start := time.Now()
		var err error
		if db.pool != nil {
			_, err = db.pool.Exec(ctx, q)
		} else {
			_, err = db.wr.ExecContext(ctx, q)
		}
		db.observe(start)
		if err != nil {
			return fail(err, "analyze after seed")
		}
	}
	return nil
}

// sqliteBulk inserts rows with a prepared statement of many rows at a time:
// one statement per ~500 rows instead of one per row is most of the speed.
func sqliteBulk(ctx context.Context, t *tx, table string, cols []string, next func() ([]any, bool), observe func(start time.Time)) error {
	per := min(500, 32766/len(cols))
	stmt, err := t.sql.PrepareContext(ctx, insertValues(table, cols, per))
	if err != nil {
		return err
	}
	defer stmt.Close()
	args := make([]any, 0, per*len(cols))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		defer observe(time.Now())
		var err error
		if len(args) == per*len(cols) {
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			_, err = t.sql.ExecContext(ctx, insertValues(table, cols, len(args)/len(cols)), args...)
		}
		args = args[:0]
		return err
	}
	for {
		row, ok := next()
		if !ok {
			return flush()
		}
		args = append(args, row...)
		if len(args) == per*len(cols) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
