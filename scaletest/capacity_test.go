package scaletest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testenv"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// cost is what one phase of requests cost the instance and its dependencies.
type cost struct {
	n             int
	cpuMicros     float64 // process CPU (user+system) per request
	redisCmds     float64 // Redis commands per request
	redisBytes    float64 // Redis network bytes (in+out) per request
	dbStatements  float64 // statements sent to PostgreSQL per request
	reqPerSecWall float64
	failed        int
	firstFailures []string
}

// counters is one snapshot of what costs are derived from.
type counters struct {
	cpuTicks             int64
	redisCmds, redisByte int64
	dbStatements         float64
	at                   time.Time
}

func procTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func redisInfo(t *testing.T, r *testredis.Server, field string) int64 {
	t.Helper()
	out, err := r.Do("INFO", "stats")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO stats has no %s", field)
	return 0
}

func (m *member) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + m.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

func snapshot(t *testing.T, m *member, r *testredis.Server) counters {
	return counters{
		cpuTicks:     procTicks(t, m.cmd.Process.Pid),
		redisCmds:    redisInfo(t, r, "total_commands_processed") - 1, // the INFO itself
		redisByte:    redisInfo(t, r, "total_net_input_bytes") + redisInfo(t, r, "total_net_output_bytes"),
		dbStatements: m.metric(t, "modellab_db_queries_total"),
		at:           time.Now(),
	}
}

func costBetween(a, b counters, n int) cost {
	const ticksPerSec = 100 // USER_HZ on Linux
	f := float64(n)
	return cost{
		n:             n,
		cpuMicros:     float64(b.cpuTicks-a.cpuTicks) * 1e6 / ticksPerSec / f,
		redisCmds:     float64(b.redisCmds-a.redisCmds-2) / f, // the two INFO calls of the second snapshot
		redisBytes:    float64(b.redisByte-a.redisByte) / f,
		dbStatements:  (b.dbStatements - a.dbStatements) / f,
		reqPerSecWall: f / b.at.Sub(a.at).Seconds(),
	}
}

// TestCapacityCosts measures the per-request costs the capacity model of
// docs/DEPLOYMENT.md is built from, on the real binary (no -race) with
// PostgreSQL and a private Redis: process CPU, Redis commands and bytes,
// database statements, for cached reads (local-tier hits), uncached reads,
// writes, and a read after a write (a miss: load + fill). Long: runs
// under MODELLAB_SOAK (make soak).
func TestCapacityCosts(t *testing.T) {
	if !soak() {
		t.Skip("long: set MODELLAB_SOAK=1 (make soak)")
	}
	r := testredis.Start(t)
	m := startMember(t, testenv.FreeAddr(t), map[string]string{
		"DATABASE_URL": testpg.URL(t), "REDIS_URL": r.URL(), "ADMIN_TOKEN": adminToken,
		"ACCESS_LOG": "false", "LOG_LEVEL": "warn", "SHUTDOWN_DELAY_MS": "0",
	})
	base := "http://" + m.addr
	users, ids := capacityFixture(t, base)
	phase := func(name string, n, clients int, step func(c *loadClient, w, i int)) cost {
		ts := &tallies{kinds: map[string]*outcome{}}
		before := snapshot(t, m, r)
		var wg sync.WaitGroup
		per := n / clients
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &loadClient{base: base, token: users[w%len(users)], hc: client, ts: ts}
				for i := 0; i < per; i++ {
					step(c, w, i)
				}
			}()
		}
		wg.Wait()
		cst := costBetween(before, snapshot(t, m, r), per*clients)
		for _, o := range ts.kinds {
			cst.failed += o.failed + o.sockErr
			cst.firstFailures = append(cst.firstFailures, o.firstFailures...)
		}
		if cst.failed > 0 {
			t.Errorf("%s: %d failed: %q", name, cst.failed, cst.firstFailures)
		}
		t.Logf("%-28s n=%6d  CPU %7.1f µs/req  Redis %5.2f cmds %7.0f B/req  DB %5.2f statements/req  (%.0f req/s wall, %d clients, shared 2 cores)",
			name, cst.n, cst.cpuMicros, cst.redisCmds, cst.redisBytes, cst.dbStatements, cst.reqPerSecWall, clients)
		return cst
	}
	hit := phase("cached read (local hit)", 40000, 16, func(c *loadClient, w, i int) { c.do("hit", "GET", "/api/models", nil, 200) })
	unc := phase("uncached read (model by ID)", 8000, 16, func(c *loadClient, w, i int) {
		c.do("by id", "GET", "/api/models/"+ids[w%len(ids)][i%20], nil, 200)
	})
	// One client per user from here: every list read after its own write
	// is a miss.
	write := phase("write (PATCH)", 4000, len(users), func(c *loadClient, w, i int) {
		c.do("patch", "PATCH", "/api/models/"+ids[w%len(ids)][i%20], map[string]any{"description": fmt.Sprint("v", i)}, 200)
	})
	both := phase("write + read of the list", 4000, len(users), func(c *loadClient, w, i int) {
		if i%2 == 0 {
			c.do("patch", "PATCH", "/api/models/"+ids[w%len(ids)][i%20], map[string]any{"description": fmt.Sprint("v", i)}, 200)
		} else {
			c.do("list", "GET", "/api/models", nil, 200)
		}
	})
	// Half of "both" were writes: what is left is the read after a write,
	// a miss (one writer per user list).
	miss := cost{cpuMicros: 2*both.cpuMicros - write.cpuMicros, redisCmds: 2*both.redisCmds - write.redisCmds,
		redisBytes: 2*both.redisBytes - write.redisBytes, dbStatements: 2*both.dbStatements - write.dbStatements}
	t.Logf("%-28s            CPU %7.1f µs/req  Redis %5.2f cmds %7.0f B/req  DB %5.2f statements/req  (derived: 2×(write+read) − write)",
		"read after a write (miss)", miss.cpuMicros, miss.redisCmds, miss.redisBytes, miss.dbStatements)

	// The check of the model: a mix of 80 % hits, 10 % uncached reads, 5 %
	// writes each followed by a read of the list (5 % misses), predicted
	// from the costs above and measured.
	mix := phase("mix 80/10/5/5", 16000, len(users), func(c *loadClient, w, i int) {
		switch i % 20 {
		case 0:
			c.do("patch", "PATCH", "/api/models/"+ids[w%len(ids)][i%20], map[string]any{"description": fmt.Sprint("v", i)}, 200)
		case 2, 3:
			c.do("by id", "GET", "/api/models/"+ids[w%len(ids)][i%20], nil, 200)
		default:
			c.do("list", "GET", "/api/models", nil, 200)
		}
	})
	checkModel(t, mix, hit, unc, write, miss)
}

// capacityFixture makes 8 users with 20 models each (a realistic list);
// it returns their tokens and model IDs.
func capacityFixture(t *testing.T, base string) (users []string, ids [][]string) {
	t.Helper()
	setup := &loadClient{base: base, token: adminToken, hc: client, ts: &tallies{kinds: map[string]*outcome{}}}
	for i := 0; i < 8; i++ {
		var u struct{ Token string }
		decodeJSON(t, setup.do("setup", "POST", "/api/users", map[string]any{"name": fmt.Sprintf("cap%d", i)}, 201), &u)
		users = append(users, u.Token)
	}
	// 20 models per user, as a realistic list.
	for _, tok := range users {
		c := &loadClient{base: base, token: tok, hc: client, ts: setup.ts}
		var mine []string
		for k := 0; k < 20; k++ {
			var md struct{ ID string }
			decodeJSON(t, c.do("setup", "POST", "/api/models", map[string]any{"name": fmt.Sprintf("m%02d", k), "provider": "acme", "description": strings.Repeat("d", 100)}, 201), &md)
			mine = append(mine, md.ID)
		}
		ids = append(ids, mine)
	}
	for _, tok := range users { // fill
		(&loadClient{base: base, token: tok, hc: client, ts: setup.ts}).do("setup", "GET", "/api/models", nil, 200)
	}
	return users, ids
}

// checkModel logs the mix's costs as predicted from the per-kind costs
// (80 % hits, 10 % uncached reads, 5 % writes, 5 % misses) and as measured.
func checkModel(t *testing.T, mix, hit, unc, write, miss cost) {
	t.Helper()
	predict := func(f func(cost) float64) float64 {
		return 0.80*f(hit) + 0.10*f(unc) + 0.05*f(write) + 0.05*f(miss)
	}
	t.Logf("mix predicted: CPU %.1f µs/req, Redis %.2f cmds %.0f B/req, DB %.2f statements/req; measured: CPU %.1f, Redis %.2f cmds %.0f B, DB %.2f",
		predict(func(c cost) float64 { return c.cpuMicros }), predict(func(c cost) float64 { return c.redisCmds }),
		predict(func(c cost) float64 { return c.redisBytes }), predict(func(c cost) float64 { return c.dbStatements }),
		mix.cpuMicros, mix.redisCmds, mix.redisBytes, mix.dbStatements)
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}
