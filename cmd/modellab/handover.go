package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modellab/modellab/server"
)

// handover is the graceful end of serve after SIGTERM: /readyz answers 503
// at once while everything else is still served for SHUTDOWN_DELAY_MS, so
// that load balancers take the instance out before it stops accepting;
// then the listener closes, every request already on a connection is
// served, and what is still in flight drains for up to SHUTDOWN_TIMEOUT_MS.
type handover struct {
	srv    *http.Server
	ln     net.Listener // the listener srv.Serve accepts on
	conns  *connStates  // srv's ConnState hook
	api    *server.Server
	served <-chan error // srv.Serve's result
	cfg    config
	log    *slog.Logger
}

func (h handover) run() error {
	// Responses from now on carry Connection: close (server.Server sets
	// it): a proxy's pooled connections move to new ones, still accepted
	// here during the delay, so that none is idle when the drain comes.
	// Idle ones are not closed now: that races with a request a proxy is
	// writing on one.
	h.api.BeginShutdown()
	h.log.Info("shutting down: readiness 503, still serving", "delay", h.cfg.ShutdownDelay)
	select {
	case err := <-h.served:
		return err
	case <-time.After(h.cfg.ShutdownDelay):
	}
	h.log.Info("shutting down: draining in-flight requests", "timeout", h.cfg.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Shutdown)
	defer cancel()
	// Stop accepting first, and let every connection already accepted
	// have its request served, before http.Server.Shutdown: Shutdown drops
	// a request it reads after it began (the connection closes with no
	// answer, and a proxy cannot retry a POST that met that), and a
	// connection accepted a moment before the close has its request still
	// on the way.
	_ = h.ln.Close()
	if err := <-h.served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	h.conns.waitQuiet(ctx)
	if err := h.srv.Shutdown(ctx); err != nil {
		h.log.Warn("shutdown did not drain in time", "err", err)
		_ = h.srv.Close()
	}
	return nil
}

// connStates knows which of a server's connections are reading or serving
// a request (http.StateNew or http.StateActive).
type connStates struct {
	mu   sync.Mutex
	busy map[net.Conn]struct{}
}

func newConnStates() *connStates {
	return &connStates{busy: map[net.Conn]struct{}{}}
}

// track is the http.Server's ConnState hook.
func (c *connStates) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew, http.StateActive:
		c.busy[conn] = struct{}{}
	default: // idle, closed, or hijacked (its handler owns it now)
		delete(c.busy, conn)
	}
}

func (c *connStates) busyCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.busy)
}

// waitQuiet returns once no connection is busy, or when ctx ends. A
// connection that never sends a request ends by the server's
// ReadHeaderTimeout.
func (c *connStates) waitQuiet(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for c.busyCount() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
