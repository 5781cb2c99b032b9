// Package testredis starts throw-away redis-server processes for tests.
//
// Tests that only read and write keys can share the machine's Redis on
// 127.0.0.1:6379 (with a unique key prefix, and without FLUSHALL/FLUSHDB).
// Tests that break Redis — kill it, freeze it with SIGSTOP, restart it,
// change its ACLs or configuration — must own the server they break, so that
// other tests and CI keep a healthy shared Redis. This package gives them one:
//
//	srv := testredis.Start(t)                  // standalone, on a free port
//	srv.Freeze(); ...; srv.Thaw()              // SIGSTOP / SIGCONT
//	srv.Kill(); srv.Restart()                  // same port, empty data set
//	cl := testredis.StartCluster(t, 3)         // 3-master Redis Cluster
//
// Every process is stopped by t.Cleanup. The servers run with persistence off
// (--save "" --appendonly no), so a Restart comes back empty, like a fresh
// failover target. redis-server (and redis-cli for clusters) must be installed;
// if it is not, the test fails with a message saying so (`make test` installs it).
package testredis

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testbin"
)

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
	frozen bool
}

// Start launches redis-server on a free port with persistence disabled, waits
// until it answers PING and registers its shutdown with t.Cleanup. extraArgs
// are appended to the command line (e.g. "--requirepass", "secret").
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	return start(t, false, extraArgs...)
}

func start(t testing.TB, cluster bool, extraArgs ...string) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t, cluster)
		args := []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)),
		}
		if cluster {
			args = append(args,
				"--cluster-enabled", "yes",
				"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
				"--cluster-node-timeout", "2000",
			)
		}
		args = append(args, extraArgs...)
		s := &Server{t: t, port: port, dir: dir, args: args}
		if lastErr = s.launch(bin); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("testredis: cannot start redis-server: %v", lastErr)
	return nil
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, c := range []string{"/usr/bin/" + name, "/usr/local/bin/" + name} {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		t.Fatalf("testredis: %s not found in PATH: install Redis (e.g. `apt-get install redis-server`, or `make test`, which installs it)", name)
	}
	return p
}

// freePort asks the kernel for a free port. For cluster nodes the cluster bus
// port (port+10000) must be free as well.
func freePort(t testing.TB, cluster bool) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testredis: no free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !cluster {
			l.Close()
			return port
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return port
	}
	t.Fatalf("testredis: no free port pair for a cluster node")
	return 0
}

func (s *Server) launch(bin string) error {
	cmd := exec.Command(bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	testbin.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start (port %d): %s", s.port, s.logTail())
		default:
		}
		if out, err := s.Do("PING"); err == nil && out == "PONG" {
			s.mu.Lock()
			s.cmd = cmd
			s.exited = exited
			s.frozen = false
			s.mu.Unlock()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer PING in 5s: %s", s.port, s.logTail())
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.port)))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the TCP port of the server.
func (s *Server) Port() int { return s.port }

// URL is redis://host:port of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Kill stops the server with SIGKILL (no clean shutdown) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	if s.frozen {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.frozen = false
	}
	s.cmd.Process.Kill()
	<-s.exited // reaped by the goroutine started in launch
	s.cmd = nil
}

// Freeze suspends the server with SIGSTOP: connections stay open but nothing
// is answered, the way a stalled or partitioned server behaves.
func (s *Server) Freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && !s.frozen {
		s.cmd.Process.Signal(syscall.SIGSTOP)
		s.frozen = true
	}
}

// Thaw resumes a frozen server with SIGCONT.
func (s *Server) Thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.frozen {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.frozen = false
	}
}

// Restart starts the server again on the same port with the same arguments
// (after Kill, or kills it first). The data set comes back empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	s.killLocked()
	s.mu.Unlock()
	bin := lookPath(s.t, "redis-server")
	var err error
	for i := 0; i < 20; i++ { // the port may take a moment to be released
		if err = s.launch(bin); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("testredis: restart on port %d: %v", s.port, err)
}

func (s *Server) stop() {
	s.Kill()
}

// Do sends one command over a fresh RESP2 connection and returns the reply
// flattened to a string (arrays joined by newlines; nil as ""). It is meant for
// test set-up such as ACL SETUSER or CONFIG SET, not for load.
func (s *Server) Do(args ...string) (string, error) {
	return do(s.Addr(), args...)
}

func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		parts := make([]string, 0, max(n, 0))
		for i := 0; i < n; i++ {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Cluster is a Redis Cluster of masters without replicas, owned by a test.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create … --cluster-replicas 0` (slots spread evenly)
// and waits until every node reports cluster_state:ok. It needs at least 3
// masters (a redis-cli requirement).
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testredis: a cluster needs at least 3 masters, got %d", masters)
	}
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for i := 0; i < masters; i++ {
		n := start(t, true)
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, n := range c.Nodes {
			info, err := n.Do("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				ok = false
				break
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: cluster did not reach cluster_state:ok in 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs lists host:port of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is a redis:// URL naming the first node; a cluster-aware client
// discovers the others from it.
func (c *Cluster) URL() string { return c.Nodes[0].URL() }
