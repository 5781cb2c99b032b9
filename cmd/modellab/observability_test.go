package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// scrapedLabels reads a /metrics page into metric name → the label names
// its series carry.
func scrapedLabels(t *testing.T, page string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	labelRE := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if strings.HasPrefix(rest, "{") {
			for _, m := range labelRE.FindAllStringSubmatch(rest[:strings.Index(rest, "}")+1], -1) {
				out[name][m[1]] = true
			}
		}
	}
	return out
}

// dashboardExprs returns every PromQL expression of the Grafana dashboard
// (panel targets and template queries).
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(mustRead(t, repoPath("deploy", "grafana", "modellab.json"))), &doc); err != nil {
		t.Fatalf("deploy/grafana/modellab.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				if s, ok := vv.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(vv)
			}
		case []any:
			for _, vv := range x {
				walk(vv)
			}
		}
	}
	walk(doc)
	return exprs
}

func alertExprs(t *testing.T) []string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal([]byte(mustRead(t, repoPath("deploy", "prometheus", "alerts.yml"))), &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

var (
	selectorRE = regexp.MustCompile(`\b(modellab_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|ignoring|on)\s*\(([^)]*)\)`)
	labelArgRE = regexp.MustCompile(`label_values\(\s*modellab_[a-z0-9_]+\s*,\s*([a-z_]+)\s*\)`)
)

// Every metric and label the dashboard and the alert rules use is on the
// /metrics page of a running server: they cannot drift from the code.
func TestDashboardAndAlertMetrics(t *testing.T) {
	p := startServe(t, map[string]string{
		"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "o.db"), "DISABLE_REDIS_CACHE": "true", "ACCESS_LOG": "false", "LOG_LEVEL": "warn",
	})
	for _, path := range []string{"/api/models", "/api/servers/status", "/readyz"} {
		get(t, p.url+path, p.token)
	}
	_, body := get(t, p.url+"/metrics", "")
	scraped := scrapedLabels(t, string(body))
	// Prometheus adds these when it scrapes; le is every histogram bucket's.
	added := map[string]bool{"instance": true, "job": true, "le": true}

	check := func(source string, exprs []string) map[string]bool {
		used := map[string]bool{}
		for _, e := range exprs {
			labels := map[string]bool{}
			for _, m := range selectorRE.FindAllStringSubmatch(e, -1) {
				name := m[1]
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
				have, ok := scraped[name]
				if !ok {
					t.Errorf("%s uses %s, which /metrics does not export", source, name)
					continue
				}
				for l := range have {
					labels[l] = true
				}
				for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
					if !have[mm[1]] && !added[mm[1]] {
						t.Errorf("%s: %s has no label %s (it has %v)", source, name, mm[1], have)
					}
				}
			}
			for _, g := range append(groupingRE.FindAllStringSubmatch(e, -1), labelArgRE.FindAllStringSubmatch(e, -1)...) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !labels[l] && !added[l] {
						t.Errorf("%s: groups by %s, which none of the metrics of %q has", source, l, e)
					}
				}
			}
		}
		return used
	}
	dash := check("deploy/grafana/modellab.json", dashboardExprs(t))
	alerts := check("deploy/prometheus/alerts.yml", alertExprs(t))
	// What the dashboard and the alerts are for.
	for _, name := range []string{
		"modellab_http_requests_total", "modellab_http_request_duration_seconds", "modellab_cache_requests_total",
		"modellab_cache_loads_total", "modellab_cache_load_errors_total", "modellab_redis_up", "modellab_db_pool_in_use_connections",
		"modellab_db_pool_waits_total", "modellab_db_query_duration_seconds", "modellab_load_shed_total", "modellab_db_slot_waits_total",
	} {
		if !dash[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
	for _, name := range []string{"modellab_redis_up", "modellab_http_requests_total", "modellab_db_pool_in_use_connections", "modellab_cache_load_errors_total"} {
		if !alerts[name] {
			t.Errorf("no alert rule uses %s", name)
		}
	}
	// The request metrics carry method and the path pattern as route.
	if l := scraped["modellab_http_requests_total"]; !l["method"] || !l["route"] || !l["code"] {
		t.Errorf("modellab_http_requests_total labels %v, want method, route, code", l)
	}
	if !strings.Contains(string(body), `modellab_http_requests_total{code="200",method="GET",route="/api/models"}`) {
		t.Errorf("no request series with route /api/models and method GET")
	}
}

// promtool checks the rules and runs their unit tests, when it is there
// (make check-deploy fetches it; this test does not, it is 20 MB).
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = repoPath(".cache", "tools", "root", "usr", "bin", "promtool")
		if _, err := os.Stat(promtool); err != nil {
			t.Skip("promtool is not installed (make check-deploy fetches it)")
		}
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoPath("deploy", "prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
