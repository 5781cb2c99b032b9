package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseUsers(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"seed output", `{"users": [{"id": "usr_1", "name": "demo", "admin": false, "token": "mlk_a"}, {"token": "mlk_b"}], "models": 3}`, []string{"mlk_a", "mlk_b"}, ""},
		{"array of users", `[{"token": "mlk_a"}]`, []string{"mlk_a"}, ""},
		{"array of tokens", `["mlk_a", "mlk_b"]`, []string{"mlk_a", "mlk_b"}, ""},
		{"no users", `{"users": []}`, nil, "no users"},
		{"a user without token", `{"users": [{"name": "x"}]}`, nil, "user 0 has no token"},
		{"a token with a newline", `["mlk_a\r\nX-Evil: 1"]`, nil, "cannot be sent"},
		{"a token with a space", `["mlk a"]`, nil, "cannot be sent"},
		{"not JSON", `users: 3`, nil, "modellab seed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUsers([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseUsers: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseUsers = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// authCounter counts the requests of each Authorization value.
func authCounter(t *testing.T) (*httptest.Server, func() map[string]int) {
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return srv, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range counts {
			out[k] = v
		}
		return out
	}
}

// A crowd run sends every token in turn, on both engines: each of the
// users gets about its share of the requests, and nothing else is sent.
func TestRunCrowd(t *testing.T) {
	tokens := []string{"mlk_a", "mlk_b", "mlk_c"}
	for _, tc := range []struct {
		name   string
		rate   float64
		shared bool
	}{{"closed loop", 0, false}, {"closed loop, shared runtime", 0, true}, {"open loop", 400, false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, counts := authCounter(t)
			rep, err := Run(context.Background(), Config{
				URL: srv.URL, Connections: 4, Duration: 300 * time.Millisecond, Rate: tc.rate,
				Token: "mlk_unused", Tokens: tokens, SharedRuntime: tc.shared,
				Targets: []Target{{Name: "x", Path: "/"}},
			})
			if err != nil || rep.Targets[0].Failures != 0 {
				t.Fatalf("Run: %v, %+v", err, rep)
			}
			got := counts()
			total := 0
			for _, n := range got {
				total += n
			}
			if len(got) != len(tokens) || total < 30 {
				t.Fatalf("the server saw %v, want the %d tokens of the crowd and enough requests", got, len(tokens))
			}
			for _, tok := range tokens {
				// Round robin: each token's share differs from the others' by
				// at most the requests cut short at the end.
				if n := got["Bearer "+tok]; n < total/len(tokens)-4 {
					t.Errorf("%s: %d of %d requests, want about a third", tok, n, total)
				}
			}
		})
	}
}

func TestRunCrowdBadToken(t *testing.T) {
	srv, _ := authCounter(t)
	_, err := Run(context.Background(), Config{URL: srv.URL, Tokens: []string{"ok", "bad\r\nX: y"}, Targets: []Target{{Name: "x", Path: "/"}}})
	if err == nil || !strings.Contains(err.Error(), "token 1") {
		t.Fatalf("Run with a bad token: %v, want an error naming it", err)
	}
}

func TestMainUsers(t *testing.T) {
	srv, counts := authCounter(t)
	file := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(file, []byte(`{"users": [{"token": "mlk_a"}, {"token": "mlk_b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(t, "--url", srv.URL, "--connections", "2", "--duration", "300ms", "--users", file, "--targets", "academy", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := counts(); len(got) != 2 || got["Bearer mlk_a"] == 0 || got["Bearer mlk_b"] == 0 {
		t.Fatalf("the server saw %v, want both users' tokens", got)
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.json"), writeTemp(t, `{"users": []}`)} {
		if code, _, stderr := runMain(t, "--url", srv.URL, "--users", bad); code != 2 || !strings.Contains(stderr, "--users") {
			t.Errorf("--users %s: exit %d, stderr %q; want 2 naming --users", bad, code, stderr)
		}
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
