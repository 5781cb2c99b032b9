package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table from envVars")

// badEnv sets every variable of the configuration to a value that fails
// its check.
func badEnv() map[string]string {
	env := map[string]string{}
	for _, v := range envVars {
		env[v.name] = "not a valid value://"
	}
	return env
}

// runCLI runs the program to its end. Its output goes through locked
// writers: a command's goroutines (logs, progress) write concurrently, as
// they may to os.Stderr.
func runCLI(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var mu sync.Mutex
	var out, errb strings.Builder
	getenv := func(k string) string { return env[k] }
	code = run(context.Background(), append([]string{"modellab"}, args...), getenv, strings.NewReader(""),
		lockedWriter{&mu, &out}, lockedWriter{&mu, &errb})
	return code, out.String(), errb.String()
}

// Every command answers -h and --help on stdout with exit 0, listing its
// flags and the variables it reads, even when the environment is all bad.
func TestHelpEveryCommand(t *testing.T) {
	cases := []struct {
		args  []string
		flags []string
		env   scope
	}{
		{nil, nil, inServe | inBench | inDB},
		{[]string{"serve"}, []string{"addr", "database", "redis", "demo"}, inServe},
		{[]string{"seed"}, []string{"database", "users", "models", "global-models", "servers", "events", "days", "seed"}, inDB},
		{[]string{"loadtest"}, []string{"url", "connections", "duration", "rate", "token", "targets", "path", "header", "timeout", "json"}, 0},
		{[]string{"bench"}, []string{"connections", "duration", "database", "redis", "targets", "size", "json"}, inBench},
		{[]string{"migrate"}, []string{"database"}, inDB},
		{[]string{"migrate", "status"}, []string{"database"}, inDB},
		{[]string{"token"}, []string{"user", "name", "expires-in", "database"}, inDB},
		{[]string{"version"}, nil, 0},
		{[]string{"probe"}, []string{"timeout"}, inProbe},
	}
	for _, c := range cases {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c.args...), h)
			code, stdout, stderr := runCLI(badEnv(), args...)
			if code != 0 || stderr != "" {
				t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
				continue
			}
			if !strings.Contains(stdout, "Usage") {
				t.Errorf("%v: no usage in %q", args, stdout)
			}
			for _, f := range c.flags {
				if !strings.Contains(stdout, "--"+f+" ") && !strings.Contains(stdout, "--"+f+"\n") {
					t.Errorf("%v: flag --%s not in the help:\n%s", args, f, stdout)
				}
			}
			for _, v := range envVars {
				listed := strings.Contains(stdout, "\n  "+v.name+" ")
				if want := v.scope&c.env != 0; listed != want {
					t.Errorf("%v: %s listed=%v, want %v:\n%s", args, v.name, listed, want, stdout)
				}
			}
			if c.env == 0 && !strings.Contains(stdout, "Environment: none") {
				t.Errorf("%v: the help does not say that no variable is read:\n%s", args, stdout)
			}
		}
	}
	// help COMMAND is COMMAND --help.
	code, stdout, _ := runCLI(nil, "help", "migrate")
	if code != 0 || !strings.Contains(stdout, "Usage: modellab migrate") {
		t.Errorf("help migrate: exit %d, %q", code, stdout)
	}
}

// A bad flag is a usage error on stderr (exit 2); the help is not printed.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--demo=maybe"}, {"serve", "extra"}, {"seed", "--users", "x"}, {"bench", "--nope"},
		{"migrate", "sideways"}, {"migrate", "status", "extra"}, {"version", "extra"}, {"probe", "--timeout", "0s"},
		{"loadtest", "--nope"},
	} {
		code, stdout, stderr := runCLI(nil, args...)
		if code != 2 || stdout != "" || stderr == "" || strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and one error on stderr", args, code, stdout, stderr)
		}
	}
}

// Each command reads exactly the variables envVars gives it, and envVars
// names every variable the configuration reads.
func TestEnvScopes(t *testing.T) {
	for _, sc := range []scope{inServe, inBench, inDB, inProbe} {
		read := map[string]bool{}
		if _, err := loadConfigFor(func(k string) string { read[k] = true; return "" }, sc); err != nil {
			t.Fatalf("scope %d, empty environment: %v", sc, err)
		}
		for _, v := range envVars {
			if want := v.scope&sc != 0; read[v.name] != want {
				t.Errorf("scope %d: %s read=%v, want %v", sc, v.name, read[v.name], want)
			}
			delete(read, v.name)
		}
		if len(read) > 0 {
			t.Errorf("scope %d reads variables missing from envVars: %v", sc, read)
		}
	}
	// The defaults of the table are what loading applies.
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.DatabaseURL != "sqlite://./modellab.db" || cfg.ModelsTTL.Milliseconds() != 120000 ||
		cfg.Stale.Milliseconds() != 600000 || cfg.Shutdown.Milliseconds() != 20000 || cfg.RedisURL != "redis://localhost:6379" {
		t.Errorf("defaults: %+v", cfg)
	}
	// A bad value outside a command's scope does not stop it.
	if _, err := loadConfigFor(func(k string) string { return map[string]string{"REDIS_URL": "http://x"}[k] }, inDB); err != nil {
		t.Errorf("seed/migrate failed on REDIS_URL, which they do not read: %v", err)
	}
}

// The README's configuration table is envMarkdown(); -update rewrites it.
func TestREADMEConfigTable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	head := "| variable | default | meaning |\n"
	i := strings.Index(readme, head)
	if i < 0 {
		t.Fatalf("README.md has no configuration table starting %q", head)
	}
	end := strings.Index(readme[i:], "\n\n")
	if end < 0 {
		end = len(readme) - i
	}
	got, want := readme[i:i+end+1], envMarkdown()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:i]+want+readme[i+end+1:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's configuration table differs from envVars (go test ./cmd/modellab -run TestREADMEConfigTable -update):\n%s", lineDiff(got, want))
}

func lineDiff(got, want string) string {
	have := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		have[l] = true
	}
	var out []string
	for _, l := range strings.Split(want, "\n") {
		if !have[l] {
			out = append(out, "want: "+l)
		}
		delete(have, l)
	}
	for l := range have {
		out = append(out, "got:  "+l)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestBuildInfoFrom(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}
	cases := []struct {
		name     string
		info     *debug.BuildInfo
		override string
		want     buildInfo
	}{
		{"no build info", nil, "", buildInfo{Version: "dev", Commit: "unknown"}},
		{"devel, no vcs", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}}, "",
			buildInfo{Version: "dev", Commit: "unknown", GoVersion: "go1.99"}},
		{"stamped", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: vcs}, "",
			buildInfo{Version: "v1.2.3", Commit: "0123abcd", Modified: true, GoVersion: "go1.99"}},
		{"ldflags override", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: vcs}, "v9",
			buildInfo{Version: "v9", Commit: "0123abcd", Modified: true, GoVersion: "go1.99"}},
	}
	for _, c := range cases {
		got := buildInfoFrom(c.info, c.override)
		if c.want.GoVersion == "" {
			c.want.GoVersion = got.GoVersion // runtime.Version()
		}
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	code, stdout, stderr := runCLI(badEnv(), "version")
	b := readBuildInfo()
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"modellab " + b.Version + "\n", "commit:  " + b.Commit, "go:      " + b.GoVersion} {
		if !strings.Contains(stdout, want) {
			t.Errorf("version output %q lacks %q", stdout, want)
		}
	}
}

// docs/DEPLOYMENT.md has its own table of the variables, with notes for
// several instances: it names exactly the variables of envVars (plus the Go
// runtime's certificate variables).
func TestDeploymentDocNamesEveryVariable(t *testing.T) {
	doc := mustRead(t, filepath.Join("..", "..", "docs", "DEPLOYMENT.md"))
	i := strings.Index(doc, "| variable | default | meaning |")
	if i < 0 {
		t.Fatal("docs/DEPLOYMENT.md has no variable table")
	}
	table := doc[i:]
	if end := strings.Index(table, "\n\n"); end >= 0 {
		table = table[:end]
	}
	named := map[string]bool{}
	for _, line := range strings.Split(table, "\n")[2:] {
		cells := strings.Split(line, "|")
		if len(cells) < 2 {
			continue
		}
		for _, part := range strings.Split(cells[1], ",") {
			named[strings.Trim(strings.TrimSpace(part), "`")] = true
		}
	}
	for _, v := range envVars {
		if !named[v.name] {
			t.Errorf("docs/DEPLOYMENT.md does not list %s", v.name)
		}
		delete(named, v.name)
	}
	delete(named, "SSL_CERT_FILE")
	delete(named, "SSL_CERT_DIR")
	for n := range named {
		t.Errorf("docs/DEPLOYMENT.md lists %s, which modellab does not read", n)
	}
}
