package scaletest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/modellab/modellab/internal/testbin"
	"github.com/modellab/modellab/internal/testpg"
	"github.com/modellab/modellab/internal/testredis"
)

// TestTLSRedis: two instances on a rediss:// Redis whose certificate is
// issued by a private CA, given through cache.Options.TLSConfig (in-process;
// the SSL_CERT_FILE path is proved with a real process below).
func TestTLSRedis(t *testing.T) {
	rs := testredis.Start(t)
	front := testredis.StartTLSFront(t, rs.Addr())
	dbURL := testpg.URL(t)
	prefix := "scale:" + randHex(4) + ":"
	tlsConf := &tls.Config{RootCAs: front.CAPool}
	a := newInstance(t, "A", instOpts{dbURL: dbURL, redisURL: front.URL(), prefix: prefix, tls: tlsConf})
	// B names the host of the certificate (as an Upstash URL would).
	bConf := &tls.Config{RootCAs: front.CAPool, ServerName: testredis.TLSServerName}
	b := newInstance(t, "B", instOpts{dbURL: dbURL, redisURL: front.URL(), prefix: prefix, tls: bConf})
	a.waitRedisUp()
	b.waitRedisUp()
	for _, in := range []*inst{a, b} {
		if rb := in.ready(); rb.Cache.Redis != "up" {
			t.Errorf("%s: /readyz = %+v, want redis up", in.name, rb)
		}
	}

	alice := a.missThenHit("alice", "tls-1")
	if got, xc := b.modelNames(alice); xc != "HIT" || !contains(got, "tls-1") {
		t.Errorf("B first GET: X-Cache %q, models %q; want a HIT from Redis with tls-1", xc, got)
	}
	// The entry went through the TLS front into the Redis behind it.
	if keys, err := rs.Scan(prefix + "api:models:*"); err != nil || len(keys) == 0 {
		t.Errorf("Redis behind the TLS front: keys %q, %v; want the models list", keys, err)
	}
	t.Logf("TLS: client connections for 2 instances: %d", clientConns(t, rs))
	median, worst := crossStaleness(t, a, b, alice, 6, time.Second)
	t.Logf("TLS: cross-instance staleness over 6 writes: median %s, worst %s", median, worst)
	if median > 50*time.Millisecond {
		t.Errorf("TLS: median cross-instance staleness %s, want <= 50ms", median)
	}
}

// TestTLSUnverifiedCertificate: a certificate that does not verify (CA not
// trusted, or a host name the certificate does not name) means Redis is not
// used: a clear log line, the memory tier, /readyz "redis":"down", and every
// request still answered.
func TestTLSUnverifiedCertificate(t *testing.T) {
	rs := testredis.Start(t)
	front := testredis.StartTLSFront(t, rs.Addr())
	cases := []struct {
		name string
		conf *tls.Config
	}{
		{"unknown CA", nil}, // system roots: the test CA is not among them
		{"wrong host name", &tls.Config{RootCAs: front.CAPool, ServerName: "other.test"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := "sqlite://" + filepath.Join(t.TempDir(), "db.sqlite")
			prefix := "scale:" + randHex(4) + ":"
			in := newInstance(t, "A", instOpts{dbURL: dbURL, redisURL: front.URL(), prefix: prefix, tls: tc.conf})
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(in.logs.String(), "TLS certificate does not verify") {
				if time.Now().After(deadline) {
					t.Fatalf("no TLS failure log line within 10s; log:\n%s", in.logs)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if logs := in.logs.String(); !strings.Contains(logs, "x509") && !strings.Contains(logs, "certificate") {
				t.Errorf("log does not give the x509 reason:\n%s", logs)
			}
			if rb := in.ready(); rb.Cache.Redis != "down" || rb.Cache.Mode != "memory" || rb.Database != "ok" {
				t.Errorf("/readyz = %+v, want database ok, cache memory/down", rb)
			}
			alice := in.missThenHit("alice", "m") // the memory tier
			in.must(200, "GET", "/api/servers/status", alice, nil)
			in.must(200, "GET", "/api/analytics/data", alice, nil)
			if st := in.stats(); st.Redis != "down" || st.Mode != "memory" {
				t.Errorf("stats: redis %q mode %q, want down/memory", st.Redis, st.Mode)
			}
			if keys, _ := rs.Scan(prefix + "*"); len(keys) != 0 {
				t.Errorf("Redis behind the front got keys %q, want none", keys)
			}
			if n := strings.Count(in.logs.String(), "TLS certificate does not verify"); n != 1 {
				t.Errorf("the TLS failure was logged %d times, want once", n)
			}
		})
	}
}

// The binary for the process tests. TestMain starts `go build` at once, in
// the background, so that it overlaps with the in-process tests.
var (
	buildDone = make(chan struct{})
	binPath   string
	buildErr  error
	buildOut  []byte
	buildCmd  *exec.Cmd
)

var processTestsRan atomic.Bool

func modellabBinary(t *testing.T) string {
	t.Helper()
	processTestsRan.Store(true)
	select {
	case <-buildDone:
	case <-time.After(3 * time.Minute):
		t.Fatalf("go build modellab: not done within 3 minutes")
	}
	if buildErr != nil {
		t.Fatalf("go build modellab: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "modellab-scaletest-")
	if err != nil {
		panic(err)
	}
	// The production build (no -race): its link is about a third of a race
	// build's, and the dependencies stay in the build cache between runs.
	binPath = filepath.Join(dir, "modellab")
	buildCmd = exec.Command("go", "build", "-o", binPath, "github.com/modellab/modellab/cmd/modellab")
	buildCmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	buildCmd.Stdout, buildCmd.Stderr = &out, &out
	if buildErr = buildCmd.Start(); buildErr != nil {
		close(buildDone)
	} else {
		go func() {
			buildErr = buildCmd.Wait()
			buildOut = out.Bytes()
			close(buildDone)
		}()
	}
	code := m.Run()
	if !processTestsRan.Load() {
		// -run left the process tests out: do not wait for the build.
		select {
		case <-buildDone:
		default:
			syscall.Kill(-buildCmd.Process.Pid, syscall.SIGKILL) // go build and its compilers
		}
	}
	<-buildDone
	os.RemoveAll(dir)
	if code == 0 {
		// Instances on a cluster, TLS fronts and their Redis clients must
		// all be stopped by the tests' cleanups.
		// rueidis' cluster client may still sleep (< 1 s) before a
		// delayed topology refresh after Close; it then returns by itself.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// proc is one `modellab serve` process.
type proc struct {
	url  string
	logs *logBuf
}

// startProc runs the binary with exactly env (plus PATH and HOME) and
// waits until it listens. Go reads SSL_CERT_FILE once per process, which is
// why this needs a process of its own.
func startProc(t *testing.T, env map[string]string) *proc {
	t.Helper()
	bin := modellabBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0", "--demo=false")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "SHUTDOWN_DELAY_MS=0"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	p := &proc{logs: &logBuf{}}
	cmd.Stderr = p.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	testbin.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start modellab: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.url = <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("modellab did not listen within 60s; stderr:\n%s", p.logs)
	}
	return p
}

func (p *proc) inst(t *testing.T, name string) *inst {
	return &inst{t: t, name: name, url: p.url, logs: p.logs}
}

// TestTLSProcessSSLCertFile: `modellab serve` with REDIS_URL=rediss://…
// verifies the certificate against the system roots, and SSL_CERT_FILE
// adds a private CA; without it the certificate does not verify, the
// process says so and serves from memory.
func TestTLSProcessSSLCertFile(t *testing.T) {
	rs := testredis.Start(t)
	front := testredis.StartTLSFront(t, rs.Addr())
	for _, tc := range []struct {
		name      string
		caFile    string
		wantRedis string
	}{
		{"SSL_CERT_FILE names the CA", front.CAFile, "up"},
		{"no CA", "", "down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "scale:" + randHex(4) + ":"
			env := map[string]string{
				"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "db.sqlite"),
				// UPSTASH_REDIS_URL wins over REDIS_URL: the shared Redis
				// named here must not be used.
				"UPSTASH_REDIS_URL": front.URL(),
				"REDIS_URL":         "redis://127.0.0.1:1",
				"CACHE_PREFIX":      prefix,
				"ADMIN_TOKEN":       adminToken,
				"REDIS_TIMEOUT_MS":  "1000",
				"ACCESS_LOG":        "false",
			}
			if tc.caFile != "" {
				env["SSL_CERT_FILE"] = tc.caFile
			} else {
				// A CA file that does not exist: only the system roots remain, and
				// none of them vouches for the test CA.
				env["SSL_CERT_FILE"] = filepath.Join(t.TempDir(), "none.pem")
			}
			p := startProc(t, env)
			in := p.inst(t, "proc")
			waitFor(t, 15*time.Second, "redis "+tc.wantRedis+" in /readyz", func() bool {
				return in.ready().Cache.Redis == tc.wantRedis
			})
			in.missThenHit("alice", "m")
			keys, err := rs.Scan(prefix + "api:*")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantRedis == "up" {
				if len(keys) == 0 {
					t.Errorf("no api:* key reached the Redis behind the TLS front")
				}
				if st := in.stats(); st.Coherence != "tracking" {
					t.Errorf("stats coherence %q, want tracking", st.Coherence)
				}
			} else {
				if len(keys) != 0 {
					t.Errorf("keys %q reached Redis through an unverified certificate", keys)
				}
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(p.logs.String(), "TLS certificate does not verify") {
					if time.Now().After(deadline) {
						t.Fatalf("no TLS failure log line within 10s; stderr:\n%s", p.logs)
					}
					time.Sleep(5 * time.Millisecond)
				}
				if rb := in.ready(); rb.Cache.Redis != "down" {
					t.Errorf("/readyz %+v, want redis down", rb)
				}
			}
		})
	}
}
