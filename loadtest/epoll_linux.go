//go:build linux

package loadtest

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The epoll engine runs the closed loop over plain HTTP the way wrk does: a
// few OS threads (one per GOMAXPROCS), each waiting in epoll_wait on its share
// of the non-blocking connections, with no goroutine switches per request.
// On a small machine shared with the server under test this halves the
// generator's CPU per request compared with a goroutine per connection. The
// response parser is incremental (responses arrive in pieces); its rules are
// those of the goroutine client (client.go).

// epollEnabled can be turned off by tests to exercise the portable engine.
var epollEnabled = true

func epollUsable(cfg Config, ep endpoint) bool {
	return epollEnabled && cfg.Rate <= 0 && ep.tls == nil
}

var (
	errTimeout   = errors.New("request timed out")
	errEOF       = errors.New("connection closed by the server")
	errLeftover  = malformedError("bytes after the response")
	errHeadLarge = malformedError("response head larger than the buffer")
)

// Parser phases.
const (
	phHead = iota
	phBody
	phChunkSize
	phChunkData
	phChunkCRLF
	phTrailers
	phUntilClose
)

// econn is one connection of the epoll engine.
type econn struct {
	fd        int // -1 when closed
	idx       int // in its loop's conns, the epoll user data
	rec       *recorder
	connected bool
	req       []byte    // the current request
	wrOff     int       // bytes of the request written
	start     time.Time // of the current request
	inFlight  bool      // a request is being sent or awaited
	reused    bool
	gotBytes  bool
	retried   bool
	backoff   time.Duration
	wakeAt    time.Time // in backoff until then

	buf      []byte
	r, w     int // unparsed bytes are buf[r:w]
	scanned  int // head: bytes of buf[r:w] already searched for the blank line
	phase    int
	status   int
	keep     bool
	remain   int64 // body or chunk bytes still to discard
	finished bool  // the response is complete
}

type eloop struct {
	epfd     int
	conns    []*econn
	reqs     *requestSet
	sa       syscall.Sockaddr
	family   int
	timeout  time.Duration
	deadline time.Time
	stop     *atomic.Bool
	yield    bool // Gosched after each batch (SharedRuntime)
	events   []syscall.EpollEvent
}

// runEpoll runs the closed loop for one target until stop is set or the
// deadline passes. addr is the server's resolved address; shared is
// Config.SharedRuntime.
func runEpoll(addr *net.TCPAddr, reqs *requestSet, timeout time.Duration, deadline time.Time, stop *atomic.Bool, recs []*recorder, shared bool) error {
	// Each loop has its own Sockaddr: syscall.Connect writes into it.
	sockaddr := func() (int, syscall.Sockaddr) {
		if ip4 := addr.IP.To4(); ip4 != nil {
			s := &syscall.SockaddrInet4{Port: addr.Port}
			copy(s.Addr[:], ip4)
			return syscall.AF_INET, s
		}
		s := &syscall.SockaddrInet6{Port: addr.Port}
		copy(s.Addr[:], addr.IP.To16())
		return syscall.AF_INET6, s
	}
	nloops := min(runtime.GOMAXPROCS(0), len(recs))
	if shared {
		nloops = 1
	}
	loops := make([]*eloop, nloops)
	for i := range loops {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			for _, l := range loops[:i] {
				syscall.Close(l.epfd)
			}
			return err
		}
		family, sa := sockaddr()
		loops[i] = &eloop{epfd: epfd, reqs: reqs, sa: sa, family: family, timeout: timeout,
			deadline: deadline, stop: stop, yield: shared, events: make([]syscall.EpollEvent, 256)}
	}
	for i, rec := range recs {
		l := loops[i%nloops]
		l.conns = append(l.conns, &econn{fd: -1, idx: len(l.conns), rec: rec, buf: make([]byte, readBufferSize)})
	}
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run()
		}()
	}
	wg.Wait()
	return nil
}

func (l *eloop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		for _, c := range l.conns {
			l.closeConn(c)
		}
		syscall.Close(l.epfd)
	}()
	now := time.Now()
	for _, c := range l.conns {
		l.begin(c, now)
	}
	lastScan := now
	for !l.stop.Load() {
		wait := 20 * time.Millisecond
		if d := time.Until(l.deadline); d < wait {
			wait = d
		}
		if wait <= 0 {
			return
		}
		// Poll without blocking first: under load events are usually
		// ready, and a blocking system call costs the runtime a P hand-off.
		n, err := epollWaitNow(l.epfd, l.events)
		if err == nil && n == 0 {
			ms := int((wait + time.Millisecond - 1) / time.Millisecond)
			n, err = syscall.EpollWait(l.epfd, l.events, ms)
		}
		if err != nil && err != syscall.EINTR {
			return
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			c := l.conns[ev.Fd]
			if c.fd < 0 {
				continue
			}
			l.handle(c, ev.Events)
		}
		if l.yield {
			runtime.Gosched()
		}
		now = time.Now()
		if now.Sub(lastScan) >= 5*time.Millisecond {
			lastScan = now
			l.scan(now)
		}
	}
}

// scan fails requests past their timeout and restarts connections whose
// backoff is over.
func (l *eloop) scan(now time.Time) {
	for _, c := range l.conns {
		switch {
		case c.inFlight && now.Sub(c.start) > l.timeout:
			l.fail(c, errTimeout, now)
		case !c.inFlight && c.fd < 0 && !now.Before(c.wakeAt):
			l.begin(c, now)
		}
	}
}

// begin starts a new request on c, connecting first when needed.
func (l *eloop) begin(c *econn, now time.Time) {
	if l.stop.Load() || !now.Before(l.deadline) {
		return
	}
	c.start = now
	c.inFlight = true
	c.retried = false
	c.req = l.reqs.pick()
	l.send(c, now)
}

// send (re)sends the current request, connecting first when needed.
func (l *eloop) send(c *econn, now time.Time) {
	c.wrOff = 0
	c.gotBytes = false
	c.r, c.w, c.scanned = 0, 0, 0
	c.phase = phHead
	c.finished = false
	if c.fd < 0 {
		if err := l.connect(c); err != nil {
			l.fail(c, &dialError{err}, now)
			return
		}
		return // the request is written when the connection is writable
	}
	l.write(c)
}

func (l *eloop) connect(c *econn) error {
	fd, err := syscall.Socket(l.family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.Connect(fd, l.sa); err != nil && err != syscall.EINPROGRESS {
		syscall.Close(fd)
		return err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (syscall.EPOLLET & 0xffffffff), Fd: int32(c.idx)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		syscall.Close(fd)
		return err
	}
	c.fd = fd
	c.connected = false
	c.reused = false
	return nil
}

func (l *eloop) closeConn(c *econn) {
	if c.fd >= 0 {
		syscall.Close(c.fd) // also removes it from the epoll set
		c.fd = -1
	}
}

func (l *eloop) handle(c *econn, events uint32) {
	if !c.connected {
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		soerr, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err == nil && soerr != 0 {
			err = syscall.Errno(soerr)
		}
		if err != nil {
			l.fail(c, &dialError{err}, time.Now())
			return
		}
		c.connected = true
		c.backoff = 0
		if c.inFlight {
			l.write(c)
		}
		return
	}
	if !c.inFlight {
		return
	}
	if c.wrOff < len(c.req) {
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			l.write(c)
		}
		return
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP|syscall.EPOLLRDHUP) != 0 {
		l.read(c, events)
	}
}

func (l *eloop) write(c *econn) {
	for c.wrOff < len(c.req) {
		n, err := rawWrite(c.fd, c.req[c.wrOff:])
		if err == syscall.EAGAIN {
			return // resumed on EPOLLOUT
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			l.fail(c, err, time.Now())
			return
		}
		c.wrOff += n
	}
	// The response may already be there (edge-triggered: no new event).
	l.read(c, 0)
}

// read reads and parses what has arrived. events are those of the epoll
// event that triggered it (0 right after writing the request): once the peer
// has closed, no further edge will come, so read on to the end of the stream.
func (l *eloop) read(c *econn, events uint32) {
	peerClosed := events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	for {
		if c.w == len(c.buf) {
			if c.r > 0 {
				c.w = copy(c.buf, c.buf[c.r:c.w])
				c.r = 0
			} else {
				l.fail(c, errHeadLarge, time.Now())
				return
			}
		}
		space := len(c.buf) - c.w
		n, err := rawRead(c.fd, c.buf[c.w:])
		if err == syscall.EAGAIN {
			return
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			l.fail(c, err, time.Now())
			return
		}
		if n == 0 {
			if c.phase == phUntilClose {
				l.complete(c, false, time.Now())
				return
			}
			l.fail(c, errEOF, time.Now())
			return
		}
		c.gotBytes = true
		c.w += n
		if err := c.parse(); err != nil {
			l.fail(c, err, time.Now())
			return
		}
		if c.finished {
			if c.r != c.w {
				l.fail(c, errLeftover, time.Now())
				return
			}
			l.complete(c, c.keep, time.Now())
			return
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		if n < space && !peerClosed && c.phase != phUntilClose {
			return // drained; the next bytes raise a new edge
		}
	}
}

// complete records the finished response and starts the next request.
func (l *eloop) complete(c *econn, keep bool, now time.Time) {
	c.inFlight = false
	if l.stop.Load() || now.After(l.deadline) {
		l.closeConn(c)
		return
	}
	c.rec.record(now.Sub(c.start), c.status, nil)
	c.reused = true
	if !keep {
		l.closeConn(c)
	}
	l.begin(c, now)
}

// fail ends the current request with err, retrying once on a fresh
// connection when a reused one was closed before any byte of the response.
func (l *eloop) fail(c *econn, err error, now time.Time) {
	l.closeConn(c)
	if !c.inFlight {
		return
	}
	if _, isDial := err.(*dialError); !isDial && c.reused && !c.gotBytes && !c.retried {
		c.retried = true
		l.send(c, now)
		return
	}
	c.inFlight = false
	if l.stop.Load() || now.After(l.deadline) {
		return
	}
	c.rec.record(now.Sub(c.start), 0, err)
	if _, isDial := err.(*dialError); isDial {
		if c.backoff == 0 {
			c.backoff = time.Millisecond
		} else if c.backoff < 100*time.Millisecond {
			c.backoff *= 2
		}
		c.wakeAt = now.Add(c.backoff)
		return // scan restarts it
	}
	l.begin(c, now)
}

// parse advances the response parser over buf[r:w].
func (c *econn) parse() error {
	for c.r < c.w && !c.finished {
		data := c.buf[c.r:c.w]
		switch c.phase {
		case phHead:
			end := indexHeadEnd(data, c.scanned)
			if end < 0 {
				c.scanned = max(0, len(data)-3)
				return nil
			}
			if err := c.parseHead(data[:end]); err != nil {
				return err
			}
			c.r += end
			c.scanned = 0
		case phBody, phChunkData:
			k := min(int64(len(data)), c.remain)
			c.r += int(k)
			c.remain -= k
			if c.remain == 0 {
				if c.phase == phBody {
					c.finished = true
				} else {
					c.phase = phChunkCRLF
				}
			}
		case phUntilClose:
			c.r = c.w
		case phChunkSize, phChunkCRLF, phTrailers:
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if len(data) > 4096 {
					return malformedError("chunk line too long")
				}
				return nil
			}
			line := trimEOL(data[:i+1])
			c.r += i + 1
			switch c.phase {
			case phChunkSize:
				size, err := parseChunkSize(line)
				if err != nil {
					return err
				}
				if size == 0 {
					c.phase = phTrailers
				} else {
					c.phase, c.remain = phChunkData, size
				}
			case phChunkCRLF:
				if len(line) != 0 {
					return malformedError("chunk not followed by CRLF")
				}
				c.phase = phChunkSize
			case phTrailers:
				if len(line) == 0 {
					c.finished = true
				}
			}
		}
	}
	return nil
}

// parseHead parses a complete response head (ending with the blank line)
// and sets the body phase.
func (c *econn) parseHead(head []byte) error {
	var h respHead
	rest := head
	for first := true; len(rest) > 0; first = false {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		if first {
			status, http10, err := parseStatusLine(line)
			if err != nil {
				return err
			}
			h = respHead{status: status, keep: !http10, contentLength: -1}
			continue
		}
		if len(trimEOL(line)) == 0 {
			break // the blank line ending the head
		}
		if err := h.headerLine(trimEOL(line)); err != nil {
			return err
		}
	}
	c.status, c.keep = h.status, h.keep
	switch {
	case h.status >= 100 && h.status < 200 && h.status != 101:
		c.phase = phHead // interim response: the real one follows
	case h.status == 204 || h.status == 304 || h.status < 200:
		c.finished = true
	case h.chunked:
		c.phase = phChunkSize
	case h.contentLength == 0:
		c.finished = true
	case h.contentLength > 0:
		c.phase, c.remain = phBody, h.contentLength
	default:
		c.phase = phUntilClose
		c.keep = false
	}
	return nil
}

// indexHeadEnd returns the length of the head (through "\r\n\r\n" or
// "\n\n") in data, searching from from, or -1.
func indexHeadEnd(data []byte, from int) int {
	for i := from; i < len(data); i++ {
		if data[i] != '\n' {
			continue
		}
		if i >= 1 && data[i-1] == '\n' {
			return i + 1
		}
		if i >= 2 && data[i-1] == '\r' && data[i-2] == '\n' {
			return i + 1
		}
	}
	return -1
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket:
// they never block, so they skip the runtime's system call bookkeeping.
func rawRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// epollWaitNow is epoll_wait(2) with a zero timeout.
func epollWaitNow(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
