package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMainBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no url", []string{}, "--url is required"},
		{"bad scheme", []string{"--url", "ftp://127.0.0.1:8080"}, "scheme must be http or https"},
		{"no scheme", []string{"--url", "127.0.0.1:8080"}, "bad URL"},
		{"unknown target", []string{"--url", "http://127.0.0.1:1", "--targets", "api-models,nope"}, `unknown target "nope"`},
		{"empty targets", []string{"--url", "http://127.0.0.1:1", "--targets", ","}, "names no target"},
		{"zero connections", []string{"--url", "http://127.0.0.1:1", "--connections", "0"}, "--connections must be at least 1"},
		{"negative connections", []string{"--url", "http://127.0.0.1:1", "--connections=-5"}, "--connections must be at least 1"},
		{"zero duration", []string{"--url", "http://127.0.0.1:1", "--duration", "0s"}, "--duration must be positive"},
		{"bad duration", []string{"--url", "http://127.0.0.1:1", "--duration", "ten"}, "invalid value"},
		{"negative rate", []string{"--url", "http://127.0.0.1:1", "--rate=-1"}, "--rate must not be negative"},
		{"relative path", []string{"--url", "http://127.0.0.1:1", "--path", "api/models"}, "must start with /"},
		{"unknown flag", []string{"--url", "http://127.0.0.1:1", "--bogus"}, "flag provided but not defined"},
		{"bad header", []string{"--url", "http://127.0.0.1:1", "--header", "NoColon"}, "bad header"},
		{"framing header", []string{"--url", "http://127.0.0.1:1", "--header", "Connection: close"}, "cannot be set"},
		{"stray argument", []string{"--url", "http://127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("stderr %q lacks %q", stderr, tc.wantErr)
			}
			if stdout != "" {
				t.Fatalf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestMainHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, stdout, stderr := runMain(t, arg)
		if code != 0 || !strings.Contains(stdout, "Usage: modellab loadtest") || !strings.Contains(stdout, "--connections") || stderr != "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
}

func TestMainUnreachable(t *testing.T) {
	code, stdout, stderr := runMain(t, "--url", closedPortURL(t), "--duration", "1s")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, stderr)
	}
	if !strings.Contains(stderr, "cannot reach") || stdout != "" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
}

// recordingServer answers 200 and records the paths and Authorization
// headers it saw.
func recordingServer(t *testing.T) (*httptest.Server, func() map[string]string) {
	var mu sync.Mutex
	seen := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.RequestURI()] = r.Header.Get("Authorization")
		mu.Unlock()
		w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]string{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

func TestMainTargets(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantNames []string
		wantAuth  string
	}{
		{"default without token", nil, []string{"api-models"}, ""},
		{"default with token", []string{"--token", "tok"}, []string{"api-models", "api-servers", "api-analytics"}, "Bearer tok"},
		{"named", []string{"--targets", "home,docs"}, []string{"home", "docs"}, ""},
		{"paths repeated and listed", []string{"--path", "/a", "--path", "/b,/c?x=1"}, []string{"/a", "/b", "/c?x=1"}, ""},
		{"names then paths", []string{"--path", "/z", "--targets", "models"}, []string{"models", "/z"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, seen := recordingServer(t)
			args := append([]string{"--url", srv.URL, "--connections", "1", "--duration", "400ms", "--json"}, tc.args...)
			code, stdout, stderr := runMain(t, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			var rep Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			var names, wantPaths []string
			for _, tr := range rep.Targets {
				names = append(names, tr.Name)
			}
			if !reflect.DeepEqual(names, tc.wantNames) {
				t.Fatalf("targets %v, want %v", names, tc.wantNames)
			}
			for _, n := range tc.wantNames {
				if tg, ok := NamedTarget(n); ok {
					wantPaths = append(wantPaths, tg.Path)
				} else {
					wantPaths = append(wantPaths, n)
				}
			}
			got := seen()
			var gotPaths []string
			for p, auth := range got {
				gotPaths = append(gotPaths, p)
				if auth != tc.wantAuth {
					t.Fatalf("%s: Authorization %q, want %q", p, auth, tc.wantAuth)
				}
			}
			sort.Strings(gotPaths)
			sort.Strings(wantPaths)
			if !reflect.DeepEqual(gotPaths, wantPaths) {
				t.Fatalf("server saw %v, want %v", gotPaths, wantPaths)
			}
		})
	}
}

func TestMainJSONShape(t *testing.T) {
	srv, _ := recordingServer(t)
	code, stdout, stderr := runMain(t, "--url", srv.URL, "--connections", "2", "--duration", "400ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not {\"targets\": [...]}: %v\n%s", err, stdout)
	}
	if len(doc) != 1 || len(doc["targets"]) != 1 {
		t.Fatalf("got %s, want one key targets with one target", stdout)
	}
	tr := doc["targets"][0]
	var keys []string
	for k := range tr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"avg_ms", "failures", "max_ms", "name", "p50_ms", "p95_ms", "p99_ms", "requests", "rps", "status_counts"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("target keys %v, want %v", keys, want)
	}
	if tr["name"] != "api-models" {
		t.Fatalf("name %v", tr["name"])
	}
	counts, ok := tr["status_counts"].(map[string]any)
	if !ok || counts["200"] != tr["requests"] || tr["failures"] != 0.0 {
		t.Fatalf("status_counts %v requests %v failures %v", tr["status_counts"], tr["requests"], tr["failures"])
	}
	if !strings.Contains(stderr, "api-models") {
		t.Fatalf("no progress on stderr: %q", stderr)
	}
}

func TestMainTable(t *testing.T) {
	srv, _ := recordingServer(t)
	code, stdout, stderr := runMain(t, "--url", srv.URL, "--connections", "2", "--duration", "400ms", "--targets", "home")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "target") || !strings.HasPrefix(lines[1], "home ") || !strings.Contains(lines[1], "200:") {
		t.Fatalf("table:\n%s", stdout)
	}
}

func TestMainFailuresAreNotFatal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }))
	defer srv.Close()
	code, stdout, stderr := runMain(t, "--url", srv.URL, "--connections", "1", "--duration", "400ms", "--json")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (stderr %q)", code, stderr)
	}
	var rep Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if tr := rep.Targets[0]; tr.Failures == 0 || tr.Failures != tr.Requests || tr.StatusCounts["503"] != tr.Requests {
		t.Fatalf("got %+v, want every request a 503 failure", tr)
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      string
		want    []Target
		wantErr string
	}{
		{"api-models", []Target{{"api-models", "/api/models"}}, ""},
		{" home , /x?y=1,api-servers ", []Target{{"home", "/"}, {"/x?y=1", "/x?y=1"}, {"api-servers", "/api/servers/status"}}, ""},
		{"home,nope", nil, `unknown target "nope"`},
		{" , ", nil, "names no target"},
	}
	for _, tc := range tests {
		got, err := ParseTargets(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseTargets(%q): error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("ParseTargets(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestComparisonJSON(t *testing.T) {
	b, err := json.Marshal(Comparison{Before: Report{Targets: []TargetReport{{Name: "a"}}}, After: Report{}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"before":{"targets":[{"name":"a","requests":0,"rps":0,"avg_ms":0,"p50_ms":0,"p95_ms":0,"p99_ms":0,"max_ms":0,"failures":0,"status_counts":{}}]},"after":{"targets":[]}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}
