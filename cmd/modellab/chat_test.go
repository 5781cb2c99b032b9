package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/fakeopenai"
)

func post(t *testing.T, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, out
}

// TestServeDemoChat: with DEMO_INFERENCE_URL the demo's running servers
// talk to that inference server, as DEMO_INFERENCE_MODEL; without it,
// nothing claims to be reachable; the gateway's timeouts come from the
// environment.
func TestServeDemoChat(t *testing.T) {
	up := fakeopenai.New(t)
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "chat.db"),
		"DISABLE_REDIS_CACHE": "true", "LOG_LEVEL": "warn", "ACCESS_LOG": "false",
		"DEMO_INFERENCE_URL": up.BaseURL(), "DEMO_INFERENCE_MODEL": fakeopenai.Echo,
	}, "--demo=true")
	if p.token == "" {
		t.Fatalf("no demo token printed: %s", p.logs())
	}
	_, body := get(t, p.url+"/v1/models", p.token)
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) != 1 || list.Data[0].ID != fakeopenai.Echo {
		t.Fatalf("GET /v1/models = %s, want the one demo inference model", body)
	}
	res, body := post(t, p.url+"/v1/chat/completions", p.token, map[string]any{"model": fakeopenai.Echo,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	if res.StatusCode != 200 || !strings.Contains(string(body), "You said: hi") {
		t.Fatalf("completion: %d %s", res.StatusCode, body)
	}

	// No inference server configured: the demo's servers have no endpoint
	// and the chat page says so; a short first-byte timeout is honoured.
	q := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "nochat.db"),
		"DISABLE_REDIS_CACHE": "true", "LOG_LEVEL": "warn", "ACCESS_LOG": "false",
	}, "--demo=true")
	if _, body := get(t, q.url+"/v1/models", q.token); !strings.Contains(string(body), `"data":[]`) {
		t.Errorf("GET /v1/models without an inference server = %s, want an empty list", body)
	}
	if res, body := get(t, q.url+"/chat", q.token); res.StatusCode != 200 || !strings.Contains(string(body), "No running server with a reachable endpoint") {
		t.Errorf("GET /chat without an inference server: %d\n%s", res.StatusCode, body)
	}
}

func TestChatTimeoutsFromEnvironment(t *testing.T) {
	up := fakeopenai.New(t)
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "t.db"),
		"DISABLE_REDIS_CACHE": "true", "LOG_LEVEL": "error", "ACCESS_LOG": "false",
		"DEMO_INFERENCE_URL": up.BaseURL(), "DEMO_INFERENCE_MODEL": fakeopenai.Silent,
		"CHAT_FIRST_TOKEN_TIMEOUT_MS": "200", "CHAT_IDLE_TIMEOUT_MS": "200",
	}, "--demo=true")
	start := time.Now()
	res, body := post(t, p.url+"/v1/chat/completions", p.token, map[string]any{"model": fakeopenai.Silent,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	if res.StatusCode != 504 || !strings.Contains(string(body), "gateway_timeout") {
		t.Fatalf("silent upstream: %d %s", res.StatusCode, body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 200 ms first-byte timeout answered after %v", d)
	}
	if _, ok := up.WaitCanceled(5 * time.Second); !ok {
		t.Errorf("the upstream request outlived the timeout")
	}
}

func TestChatConfigErrors(t *testing.T) {
	for _, c := range []struct{ env map[string]string }{
		{map[string]string{"CHAT_FIRST_TOKEN_TIMEOUT_MS": "soon"}},
		{map[string]string{"CHAT_IDLE_TIMEOUT_MS": "0"}},
		{map[string]string{"DEMO_INFERENCE_URL": "localhost:11434"}},
		{map[string]string{"DEMO_INFERENCE_URL": "ftp://x/v1"}},
	} {
		var stderr strings.Builder
		getenv := func(k string) string { return c.env[k] }
		code := run(context.Background(), []string{"modellab", "serve"}, getenv, nil, io.Discard, &stderr)
		var name string
		for k := range c.env {
			name = k
		}
		if code != 2 || !strings.Contains(stderr.String(), name) {
			t.Errorf("env %v: exit %d, stderr %q; want exit 2 naming %s", c.env, code, stderr.String(), name)
		}
	}
}
