package chattest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/testbin"
	"github.com/modellab/modellab/internal/testenv"
)

const adminToken = "chattest-admin-token-0123456789"

// child is a process this test started: `modellab serve`, or the test
// binary in a role.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	lines  chan string // its stdout, line by line
	exited chan struct{}
	log    string // its stderr
}

func startChild(t testing.TB, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{t: t, cmd: cmd, lines: make(chan string, 4096), exited: make(chan struct{}), log: filepath.Join(t.TempDir(), "stderr.log")}
	lf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	testbin.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill sends SIGKILL (a crash, not a shutdown) and waits for the exit.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// line returns the next stdout line that matches re, failing after d.
func (c *child) line(re *regexp.Regexp, d time.Duration) []string {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("the process ended before printing %v; stderr: %s", re, c.stderr())
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			c.t.Fatalf("nothing matched %v within %v; stderr: %s", re, d, c.stderr())
		}
	}
}

func (c *child) stderr() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// role runs the test binary again in a role.
func role(t testing.TB, name string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), append([]string{"CHATTEST_ROLE=" + name}, env...)...)
	return startChild(t, cmd)
}

var (
	listenRE   = regexp.MustCompile(`listening on (http://\S+)`)
	upstreamRE = regexp.MustCompile(`^upstream (http://\S+)`)
)

// serve starts the real binary on a fresh SQLite database.
func serve(t testing.TB, env ...string) (*child, string) {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "--addr", "127.0.0.1:0", "--demo=false")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ACCESS_LOG=false", "LOG_LEVEL=warn",
		"ADMIN_TOKEN=" + adminToken, "DISABLE_REDIS_CACHE=true",
		"DATABASE_URL=sqlite://" + filepath.Join(t.TempDir(), "chat.db")}, env...)
	c := startChild(t, cmd)
	return c, c.line(listenRE, 60*time.Second)[1]
}

// lab is a user of a running server with models on inference servers.
type lab struct {
	t     testing.TB
	url   string
	api   *testenv.Client
	token string
}

func newLab(t testing.TB, url string) *lab {
	l := &lab{t: t, url: url, api: &testenv.Client{T: t, URL: url, AdminToken: adminToken}}
	l.token, _ = l.api.User("chatter")
	return l
}

// model registers a model (base model: the fake's behaviour) and a running
// server for it at endpoint.
func (l *lab) model(name, behaviour, endpoint string) modellab.Model {
	l.t.Helper()
	m := l.api.Model(l.token, map[string]any{"name": name, "provider": "local", "base_model": behaviour})
	l.api.Must(201, "POST", "/api/servers", l.token, map[string]any{"name": "srv-" + name, "model_id": m.ID, "status": "running", "endpoint": endpoint})
	return m
}

func (l *lab) conversation(m modellab.Model) string {
	l.t.Helper()
	var c modellab.Conversation
	l.api.Must(201, "POST", "/api/conversations", l.token, map[string]any{"model_id": m.ID}).JSON(l.t, &c)
	return c.ID
}

func (l *lab) messages(conv string) []modellab.Message {
	l.t.Helper()
	var d struct {
		Messages []modellab.Message `json:"messages"`
	}
	l.api.Must(200, "GET", "/api/conversations/"+conv, l.token, nil).JSON(l.t, &d)
	return d.Messages
}

// post sends a JSON request and returns the open response.
func (l *lab) post(path string, body any) (*http.Response, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", l.url+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// words is a message whose echo is n words long.
func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = "w" + strconv.Itoa(i)
	}
	return strings.Join(w, " ")
}

// metric reads one sample of the server's /metrics.
func metric(t testing.TB, url, name string) float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// rss is a process's resident set, in bytes.
func rss(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// loadavg is the machine's load average, for the report.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
