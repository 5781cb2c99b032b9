package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/store"
)

func tinySeed() store.SeedOptions {
	return store.SeedOptions{Users: 5, Models: 12, GlobalModels: 2, Servers: 6, Events: 200, Days: 2, Now: time.Now(), RandSeed: 1}
}

// bench loads as a crowd: every user it seeded, or the users of --users;
// a database seeded earlier without --users is loaded as demo alone.
func TestBenchCrowd(t *testing.T) {
	ctx := context.Background()
	cfg := config{DatabaseURL: "sqlite://" + filepath.Join(t.TempDir(), "b.db")}
	users := filepath.Join(t.TempDir(), "users.json")

	if _, _, err := benchCrowd(ctx, cfg, tinySeed(), writeFile(t, users, `["mlk_x"]`), io.Discard); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("--users on an empty database: %v, want an error saying it is empty", err)
	}
	demo, crowd, err := benchCrowd(ctx, cfg, tinySeed(), "", io.Discard)
	if err != nil || demo == "" || len(crowd) != 5 || !contains(crowd, demo) {
		t.Fatalf("seeding: demo %q, crowd %d, %v; want demo among the 5 seeded users", demo, len(crowd), err)
	}
	one, none, err := benchCrowd(ctx, cfg, tinySeed(), "", io.Discard)
	if err != nil || one == "" || none != nil {
		t.Fatalf("a seeded database without --users: %q, %v, %v; want demo alone", one, none, err)
	}
	seedJSON, _ := json.Marshal(map[string]any{"users": []map[string]string{{"token": crowd[1]}, {"token": crowd[2]}}})
	tok, got, err := benchCrowd(ctx, cfg, tinySeed(), writeFile(t, users, string(seedJSON)), io.Discard)
	if err != nil || tok != crowd[1] || len(got) != 2 {
		t.Fatalf("--users: %q, %v, %v; want the file's two users", tok, got, err)
	}
	if _, _, err := benchCrowd(ctx, cfg, tinySeed(), filepath.Join(t.TempDir(), "missing.json"), io.Discard); err == nil || !strings.Contains(err.Error(), "--users") {
		t.Fatalf("a missing --users file: %v", err)
	}
}

// The whole bench through run(): seeded as a crowd, both runs, and the
// original app's published figures printed beside ours for the page rows.
func TestBenchPrintsOriginal(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds and loads a server")
	}
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"modellab", "bench", "--size", "demo", "--duration", "300ms", "--connections", "4",
		"--targets", "home,academy,api-models"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, errOut.String())
	}
	// Only the cache-on run is warmed, once per target, by every seeded user.
	logs := errOut.String()
	on := strings.Index(logs, "== cache on")
	if on < 0 || strings.Contains(logs[:on], "warmed") || strings.Count(logs[on:], "warmed: one request per user (20)") != 3 {
		t.Errorf("the warm-up is not one pass per target of the cache-on run:\n%s", logs)
	}
	s := out.String()
	for _, re := range []string{
		`(?m)^academy\s+0 → 0\s`,                                   // the comparison row
		`Beside the original app's published figures`,              // the reference table's title
		`(?m)^home\s+Home\s+0 / 0\s+\S+\s+76\.0–88\.0\s`,           // ours beside theirs
		`(?m)^academy\s+Lab Academy\s+0 / 0\s+\S+\s+76\.0–88\.0\s`, // the academy page, 0 failures
		`(?m)^chat\s+Chat\s+- / 0\s+not run`,                       // not among the targets
	} {
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("bench output lacks %s:\n%s", re, s)
		}
	}
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
