// Package loadtest is modellab's load generator and its report: the engine of
// `modellab loadtest` and `modellab bench`.
//
// It talks HTTP only (it imports no other modellab package), so it can load any
// HTTP/1.1 server. Each target is run in turn for Config.Duration over
// Config.Connections keep-alive connections:
//
//   - Closed loop (the default): every connection sends its next request as
//     soon as the previous response has been read.
//   - Open loop (Config.Rate > 0): requests are scheduled at a fixed rate and
//     each latency is measured from the request's intended send time, not from
//     when a free connection finally sent it, so queueing in the server is not
//     hidden (no coordinated omission).
//
// The client is a lean HTTP/1.1 implementation (pre-serialized request bytes,
// keep-alive, body discarded without allocation), because on a small machine
// the generator shares the CPU with the server under test and must not be the
// bottleneck. The closed loop over plain HTTP on Linux runs wrk's way: one
// epoll loop per GOMAXPROCS on its own OS thread over non-blocking sockets
// (epoll_linux.go); the open loop, https and other systems use a goroutine per
// connection over net.Conn (client.go). Both follow the same rules. Redirects are not followed: a 303 from a page
// that wants a session is counted as a 303, and is not a failure. Responses are
// never compressed (no Accept-Encoding is sent).
//
// A response is a failure when the request failed at the transport level
// (connect, write, read, timeout, malformed response) or its status is >= 400:
// every target, named or given by path, is one that should succeed. Latencies
// are recorded in one HDR histogram per connection (1 µs to 60 s, 3 significant
// digits), merged when the target is done.
package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultConnections = 200
	DefaultDuration    = 30 * time.Second
	DefaultTimeout     = 10 * time.Second
)

// ErrUnreachable is returned (wrapped) by Run when the server cannot be
// reached at all: the first connection is refused, times out or fails its
// TLS handshake.
var ErrUnreachable = errors.New("cannot reach the server")

// Target is one URL path to load.
type Target struct {
	Name string // as printed in the report
	Path string // like "/api/models"; may carry a query string
}

var namedTargets = []Target{
	{"home", "/"},
	{"models", "/models"},
	{"monitor", "/monitor"},
	{"analytics", "/analytics"},
	{"docs", "/docs"},
	{"academy", "/academy"},
	{"chat", "/chat"},
	{"api-models", "/api/models"},
	{"api-servers", "/api/servers/status"},
	{"api-analytics", "/api/analytics/data"},
	{"api-runs", "/api/runs"},
}

// NamedTarget returns the target of a name of the contract: the pages home,
// models, monitor, analytics, docs, academy, chat and the APIs api-models,
// api-servers, api-analytics, api-runs.
func NamedTarget(name string) (Target, bool) {
	for _, t := range namedTargets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// TargetNames lists the names NamedTarget knows, in a stable order.
func TargetNames() []string {
	names := make([]string, len(namedTargets))
	for i, t := range namedTargets {
		names[i] = t.Name
	}
	return names
}

// Config describes a load test.
type Config struct {
	URL         string        // base URL, http://host:port or https://host:port (a path prefix is kept)
	Connections int           // concurrent keep-alive connections; default 200
	Duration    time.Duration // per target; default 30s
	Rate        float64       // > 0: open loop at Rate requests/s over all connections
	Token       string        // sent as "Authorization: Bearer <Token>" when not empty
	Targets     []Target      // run in turn
	Progress    io.Writer     // a live progress line, rewritten with \r once per second; nil = none
	Timeout     time.Duration // per request (connect + write + read); default 10s
	Headers     []string      // extra request header lines "Name: value", e.g. "Cookie: modellab_session=…"
	// SharedRuntime says that the server under test runs in this process
	// (modellab bench). The epoll engine then runs one event loop that
	// yields its processor after each batch of events: loops that poll
	// without blocking would otherwise hold the runtime's Ps until
	// preempted (10 ms), and the server's goroutines would wait for them.
	SharedRuntime bool
	// Tokens, when not empty, make the run a crowd: each request carries
	// the next of these bearer tokens in turn, and Token is not used.
	Tokens []string
}

// Report is the result of a Run: one entry per target, in the order run.
type Report struct {
	Targets []TargetReport `json:"targets"`
}

// TargetReport is the result of one target. Latencies are in milliseconds.
// Requests counts every request that finished within the duration, with a
// response or with a transport error; StatusCounts maps each status code
// ("200") to its count, and transport errors to the key "error", so the counts
// add up to Requests.
type TargetReport struct {
	Name         string           `json:"name"`
	Requests     int64            `json:"requests"`
	RPS          float64          `json:"rps"`
	AvgMS        float64          `json:"avg_ms"`
	P50MS        float64          `json:"p50_ms"`
	P95MS        float64          `json:"p95_ms"`
	P99MS        float64          `json:"p99_ms"`
	MaxMS        float64          `json:"max_ms"`
	Failures     int64            `json:"failures"`
	StatusCounts map[string]int64 `json:"status_counts"`
}

// endpoint is a parsed Config.URL.
type endpoint struct {
	addr   string      // host:port to dial
	host   string      // Host header
	prefix string      // path prefix without a trailing slash
	tls    *tls.Config // nil for http
}

func parseURL(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("bad URL %q: %v", raw, err)
	}
	var port string
	switch u.Scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return endpoint{}, fmt.Errorf("bad URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return endpoint{}, fmt.Errorf("bad URL %q: no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("bad URL %q: only scheme://host[:port][/prefix] is allowed", raw)
	}
	ep := endpoint{host: u.Host, prefix: strings.TrimSuffix(u.EscapedPath(), "/")}
	if p := u.Port(); p != "" {
		port = p
	}
	ep.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		ep.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return ep, nil
}

// buildRequest pre-serializes the GET request sent for a target.
func buildRequest(ep endpoint, path, token string, headers ...string) []byte {
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(ep.prefix)
	b.WriteString(path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(ep.host)
	b.WriteString("\r\nUser-Agent: modellab-loadtest\r\nAccept: */*\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer ")
		b.WriteString(token)
		b.WriteString("\r\n")
	}
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// checkHeader validates an extra header line "Name: value". Headers that
// would break the lean client's framing are refused.
func checkHeader(h string) error {
	name, value, ok := strings.Cut(h, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("bad header %q: want \"Name: value\"", h)
	}
	switch strings.ToLower(name) {
	case "host", "content-length", "transfer-encoding", "connection", "accept-encoding", "te", "upgrade":
		return fmt.Errorf("header %q cannot be set", name)
	}
	return nil
}

func (cfg *Config) applyDefaults() {
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
}

// Run loads each target of cfg in turn and reports on each. It returns an
// error wrapping ErrUnreachable when the server cannot be reached at all
// before the first target, an error for an invalid Config, and ctx.Err() (with
// the report of what was done so far, the interrupted target included) when
// ctx ends first. Failed requests during a run are reported, not returned.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.applyDefaults()
	ep, err := parseURL(cfg.URL)
	if err != nil {
		return Report{}, err
	}
	if len(cfg.Targets) == 0 {
		return Report{}, errors.New("loadtest: no targets")
	}
	for _, t := range cfg.Targets {
		if !strings.HasPrefix(t.Path, "/") || strings.ContainsAny(t.Path, " \r\n") {
			return Report{}, fmt.Errorf("loadtest: target %q: bad path %q", t.Name, t.Path)
		}
	}
	for _, h := range cfg.Headers {
		if err := checkHeader(h); err != nil {
			return Report{}, fmt.Errorf("loadtest: %v", err)
		}
	}
	for i, tok := range cfg.Tokens {
		if tok == "" || strings.ContainsAny(tok, " \t") || checkHeader("Authorization: Bearer "+tok) != nil {
			return Report{}, fmt.Errorf("loadtest: token %d of the crowd cannot be sent in a header", i)
		}
	}
	if cfg.Rate < 0 {
		return Report{}, errors.New("loadtest: negative rate")
	}
	addr, err := probe(ctx, ep, cfg.Timeout)
	if err != nil {
		return Report{}, err
	}

	// One recorder per connection, reused from target to target.
	recs := make([]*recorder, cfg.Connections)
	for i := range recs {
		recs[i] = newRecorder()
	}
	var rep Report
	for _, t := range cfg.Targets {
		tr := runTarget(ctx, cfg, ep, addr, t, recs)
		rep.Targets = append(rep.Targets, tr)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// probe checks that the server accepts connections at all, and returns the
// address that answered.
func probe(ctx context.Context, ep endpoint, timeout time.Duration) (*net.TCPAddr, error) {
	c := newClient(ep, nil, timeout)
	if err := c.dial(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, ep.addr, err)
	}
	addr, _ := c.conn.RemoteAddr().(*net.TCPAddr)
	c.closeConn()
	return addr, nil
}

// targetRun is the state of one target's run that its goroutines share.
type targetRun struct {
	cfg             Config
	clients         []*client
	recs            []*recorder
	stop            atomic.Bool
	stopCh          chan struct{} // closed when the run stops
	start, deadline time.Time
	stopped         time.Time // written before stopCh is closed
	dialCtx         context.Context
	cancelDials     context.CancelFunc
}

// runTarget runs one target for cfg.Duration (less when ctx ends).
func runTarget(ctx context.Context, cfg Config, ep endpoint, addr *net.TCPAddr, t Target, recs []*recorder) TargetReport {
	set := newRequestSet(ep, t.Path, cfg)
	r := &targetRun{cfg: cfg, clients: make([]*client, len(recs)), recs: recs, stopCh: make(chan struct{})}
	for i := range r.clients {
		r.clients[i] = newClient(ep, set.reqs[0], cfg.Timeout)
		r.clients[i].set = set
		recs[i].reset()
	}
	r.dialCtx, r.cancelDials = context.WithCancel(ctx)
	defer r.cancelDials()
	r.start = time.Now()
	r.deadline = r.start.Add(cfg.Duration)
	stopDone := r.stopAtDeadline(ctx)
	var progDone chan struct{}
	if cfg.Progress != nil {
		progDone = make(chan struct{})
		go func() {
			defer close(progDone)
			progress(cfg.Progress, t.Name, r.start, recs, r.stopCh)
		}()
	}

	// The engine: epoll loops for a closed loop over plain HTTP on Linux,
	// else a goroutine per connection.
	engineDone := false
	if addr != nil && epollUsable(cfg, ep) {
		engineDone = runEpoll(addr, set, cfg.Timeout, r.deadline, &r.stop, recs, cfg.SharedRuntime) == nil
	}
	if !engineDone {
		r.runWorkers()
	}
	<-stopDone
	if progDone != nil {
		<-progDone
	}
	for _, c := range r.clients {
		c.closeConn()
	}

	total := newRecorder()
	for _, rec := range recs {
		total.merge(rec)
	}
	return total.report(t.Name, r.stopped.Sub(r.start))
}

// stopAtDeadline stops the run at the deadline or when ctx ends: it flags
// the workers, then closes every connection so that no read waits for its
// timeout. The returned channel is closed once that is done.
func (r *targetRun) stopAtDeadline(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(time.Until(r.deadline))
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		r.stopped = time.Now()
		if r.stopped.After(r.deadline) {
			r.stopped = r.deadline
		}
		r.stop.Store(true)
		close(r.stopCh)
		r.cancelDials()
		for _, c := range r.clients {
			c.stop()
		}
	}()
	return done
}

// runWorkers is the portable engine: one goroutine per connection, in a
// closed loop, or an open loop at cfg.Rate requests/s in total.
func (r *targetRun) runWorkers() {
	var interval float64 // open loop: nanoseconds between intended sends
	if r.cfg.Rate > 0 {
		interval = float64(time.Second) / r.cfg.Rate
	}
	var next atomic.Int64 // open loop: index of the next request to schedule
	var wg sync.WaitGroup
	for i := range r.clients {
		w := &worker{c: r.clients[i], rec: r.recs[i], stop: &r.stop, stopCh: r.stopCh, deadline: r.deadline, ctx: r.dialCtx}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if interval > 0 {
				w.openLoop(r.start, interval, &next)
			} else {
				w.closedLoop()
			}
		}()
	}
	wg.Wait()
}

// progress writes the live progress line once per second until stopCh closes,
// then a final line ended by a newline.
func progress(w io.Writer, name string, start time.Time, recs []*recorder, stopCh <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prevN int64
	prevT := start
	line := func(now time.Time, final bool) {
		var n, f int64
		for _, r := range recs {
			n += r.liveRequests.Load()
			f += r.liveFailures.Load()
		}
		elapsed := now.Sub(start)
		var rps float64
		if final {
			if s := elapsed.Seconds(); s > 0 {
				rps = float64(n) / s
			}
		} else if dt := now.Sub(prevT).Seconds(); dt > 0 {
			rps = float64(n-prevN) / dt
		}
		prevN, prevT = n, now
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(w, "\r%-16s %6.1fs  requests %10d  %10.1f req/s  failures %d   %s",
			name, elapsed.Seconds(), n, rps, f, end)
	}
	for {
		select {
		case now := <-tick.C:
			line(now, false)
		case <-stopCh:
			line(time.Now(), true)
			return
		}
	}
}

// worker drives one connection.
type worker struct {
	c        *client
	rec      *recorder
	stop     *atomic.Bool
	stopCh   <-chan struct{}
	deadline time.Time
	ctx      context.Context // cancelled at stop; aborts dials
	backoff  time.Duration   // after consecutive dial errors
	timer    *time.Timer
}

func (w *worker) closedLoop() {
	for !w.stop.Load() {
		start := time.Now()
		if !start.Before(w.deadline) {
			return
		}
		if !w.one(start) {
			return
		}
	}
}

// openLoop sends request number i at start + i*interval (i taken from the
// shared counter) and measures its latency from that intended time.
func (w *worker) openLoop(start time.Time, interval float64, next *atomic.Int64) {
	for !w.stop.Load() {
		i := next.Add(1) - 1
		intended := start.Add(time.Duration(float64(i) * interval))
		if !intended.Before(w.deadline) {
			return
		}
		if d := time.Until(intended); d > 0 && !w.sleep(d) {
			return
		}
		if !w.one(intended) {
			return
		}
	}
}

// one sends one request whose latency counts from start, records it and
// reports whether to go on.
func (w *worker) one(start time.Time) bool {
	status, err := w.c.do(w.ctx, start)
	end := time.Now()
	if w.stop.Load() || end.After(w.deadline) {
		return false // finished after the end of the run: not counted
	}
	w.rec.record(end.Sub(start), status, err)
	if err == nil {
		w.backoff = 0
		return true
	}
	if _, ok := err.(*dialError); ok {
		// Do not spin on a server that refuses connections.
		if w.backoff == 0 {
			w.backoff = time.Millisecond
		} else if w.backoff < 100*time.Millisecond {
			w.backoff *= 2
		}
		return w.sleep(w.backoff)
	}
	w.backoff = 0
	return true
}

// sleep waits for d or until the run stops; it reports whether to go on.
func (w *worker) sleep(d time.Duration) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return true
	case <-w.stopCh:
		w.timer.Stop()
		return false
	}
}

// recorder accumulates the results of one connection. It is written by its
// worker only; liveRequests and liveFailures are also read by the progress
// line.
type recorder struct {
	hist     *hdrhistogram.Histogram // microseconds
	count    int64
	sumNS    int64
	maxNS    int64
	errors   int64
	failures int64
	status   [1000]int64

	liveRequests atomic.Int64
	liveFailures atomic.Int64
}

// Histogram range: 1 µs to 60 s, 3 significant digits.
const (
	histMinUS = 1
	histMaxUS = 60_000_000
	histSig   = 3
)

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(histMinUS, histMaxUS, histSig)}
}

func (r *recorder) reset() {
	if r.count == 0 {
		return // fresh or unused: clearing would only fault in zero pages
	}
	r.hist.Reset()
	r.count, r.sumNS, r.maxNS, r.errors, r.failures = 0, 0, 0, 0, 0
	r.status = [1000]int64{}
	r.liveRequests.Store(0)
	r.liveFailures.Store(0)
}

// record adds one finished request: its latency and either its status or its
// transport error.
func (r *recorder) record(d time.Duration, status int, err error) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	us := ns / 1000
	if us < histMinUS {
		us = histMinUS
	} else if us > histMaxUS {
		us = histMaxUS
	}
	_ = r.hist.RecordValue(us) // in range by construction
	r.count++
	r.sumNS += ns
	if ns > r.maxNS {
		r.maxNS = ns
	}
	switch {
	case err != nil || status < 100 || status > 999:
		r.errors++
		r.failures++
	default:
		r.status[status]++
		if isFailureStatus(status) {
			r.failures++
		}
	}
	r.liveRequests.Store(r.count)
	r.liveFailures.Store(r.failures)
}

// isFailureStatus reports whether a response status fails a target that
// should succeed: any status >= 400 (so every 5xx). Redirects are not
// followed and are not failures.
func isFailureStatus(status int) bool { return status >= 400 }

func (r *recorder) merge(o *recorder) {
	r.hist.Merge(o.hist)
	r.count += o.count
	r.sumNS += o.sumNS
	if o.maxNS > r.maxNS {
		r.maxNS = o.maxNS
	}
	r.errors += o.errors
	r.failures += o.failures
	for i, n := range o.status {
		r.status[i] += n
	}
}

// report turns the recorded results into a TargetReport, elapsed being the
// wall time the target ran.
func (r *recorder) report(name string, elapsed time.Duration) TargetReport {
	tr := TargetReport{
		Name:         name,
		Requests:     r.count,
		Failures:     r.failures,
		StatusCounts: map[string]int64{},
	}
	if s := elapsed.Seconds(); s > 0 {
		tr.RPS = round(float64(r.count)/s, 2)
	}
	if r.count > 0 {
		tr.AvgMS = round(float64(r.sumNS)/float64(r.count)/1e6, 3)
		tr.P50MS = round(float64(r.hist.ValueAtQuantile(50))/1e3, 3)
		tr.P95MS = round(float64(r.hist.ValueAtQuantile(95))/1e3, 3)
		tr.P99MS = round(float64(r.hist.ValueAtQuantile(99))/1e3, 3)
		tr.MaxMS = round(float64(r.maxNS)/1e6, 3)
		// A histogram value is the top of its bucket, which may lie
		// above the exact maximum.
		tr.P50MS = min(tr.P50MS, tr.MaxMS)
		tr.P95MS = min(tr.P95MS, tr.MaxMS)
		tr.P99MS = min(tr.P99MS, tr.MaxMS)
	}
	for code, n := range r.status {
		if n > 0 {
			tr.StatusCounts[fmt.Sprint(code)] = n
		}
	}
	if r.errors > 0 {
		tr.StatusCounts["error"] = r.errors
	}
	return tr
}

func round(v float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return -float64(int64(-v*p+0.5)) / p
}
