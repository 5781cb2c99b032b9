package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modellab/modellab"
)

// Response is an upstream's answer with a status below 500. Read it with
// ReadAll (a plain completion, or the upstream's 4xx error) or Next (a
// stream), then Close it.
type Response struct {
	Status   int
	Header   http.Header
	Endpoint string

	body      *watchedBody
	cancel    context.CancelCauseFunc
	hideUsage bool
	sse       *sseReader
	usage     Usage
	hasUsage  bool
	finished  bool // a chunk said why the reply ended (finish_reason)
}

// IsStream reports whether the upstream answers with server-sent events.
func (r *Response) IsStream() bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// Usage returns the usage the upstream reported, if it did.
func (r *Response) Usage() (Usage, bool) { return r.usage, r.hasUsage }

// ReadAll reads the whole body. A 2xx body must be a JSON completion;
// its usage is recorded. Other statuses are returned as they came, for the
// caller to relay.
func (r *Response) ReadAll() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.body, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBodyBytes {
		return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server's answer exceeds %d bytes", MaxBodyBytes)
	}
	if r.Status < 200 || r.Status > 299 {
		return b, nil
	}
	if !json.Valid(b) {
		return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server answered %d with a body that is not JSON", r.Status)
	}
	if err := upstreamError(b); err != nil {
		return nil, err
	}
	if u, ok, _ := usageOf(b); ok {
		r.usage, r.hasUsage = u, true
	}
	return b, nil
}

var (
	done         = []byte("[DONE]")
	finishReason = []byte(`"finish_reason"`)
)

// Next returns the data of the next chunk of a stream, io.EOF at its end
// ([DONE], or the upstream closing after a chunk with a finish_reason, as
// servers that send no [DONE] do), or the *modellab.Error that ended it:
// an error the upstream sent, a chunk that is not JSON, the idle timeout,
// a broken connection, a stream that stopped without saying it was over.
// The slice is valid until the next call.
func (r *Response) Next() ([]byte, error) {
	if r.sse == nil {
		r.sse = newSSEReader(r.body)
	}
	for {
		ev, err := r.sse.next()
		switch {
		case errors.Is(err, io.EOF) && !r.finished:
			return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server ended the stream before the reply was over")
		case errors.Is(err, errEventTooLarge):
			return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server sent an event over %d bytes", maxEventBytes)
		case err != nil:
			return nil, err
		case ev.Type == "error":
			return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server reported an error: %s", errorText(ev.Data))
		}
		data := bytes.TrimSpace(ev.Data)
		if bytes.Equal(data, done) {
			return nil, io.EOF
		}
		if !json.Valid(data) {
			return nil, modellab.Errorf(modellab.EBADGATEWAY, "the inference server sent a chunk that is not JSON")
		}
		if err := upstreamError(data); err != nil {
			return nil, err
		}
		if hasValue(data, finishReason, '"') {
			r.finished = true
		}
		if u, ok, only := usageOf(data); ok {
			r.usage, r.hasUsage = u, true
			if only && r.hideUsage {
				continue
			}
		}
		return data, nil
	}
}

// BeforeRead sets f to run each time the stream is about to read from the
// upstream's connection: a relay writes the chunks it has without
// flushing them and flushes in f, so that the chunks that arrived together
// leave together (one write instead of one per chunk when it falls
// behind), and none waits while the upstream is quiet.
func (r *Response) BeforeRead(f func()) { r.body.beforeRead = f }

// Close ends the upstream request (a stream not read to its end is
// aborted: inference servers stop generating when their client leaves).
func (r *Response) Close() {
	r.body.clock.stop()
	r.cancel(nil)
	_ = r.body.rc.Close()
}

// watchdog cancels an upstream request that sends nothing for too long:
// first the first-byte timeout, then, once bytes flow, the idle timeout
// between two reads.
type watchdog struct {
	t     *time.Timer
	alive atomic.Bool // a byte has arrived: the idle timeout applies
}

func newWatchdog(cancel context.CancelCauseFunc, firstByte, idle time.Duration) *watchdog {
	w := &watchdog{}
	w.t = time.AfterFunc(firstByte, func() {
		if w.alive.Load() {
			cancel(errIdle)
			return
		}
		cancel(errFirstByte)
	})
	return w
}

// fed restarts the idle timeout.
func (w *watchdog) fed(idle time.Duration) {
	w.alive.Store(true)
	w.t.Reset(idle)
}

func (w *watchdog) stop() { w.t.Stop() }

// watchedBody is an upstream body whose reads feed the watchdog and whose
// errors say what happened.
type watchedBody struct {
	rc     io.ReadCloser
	clock  *watchdog
	ctx    context.Context // the upstream request's
	parent context.Context // the caller's
	// The timeouts, for the messages.
	firstByte, idle time.Duration
	beforeRead      func()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.beforeRead != nil {
		b.beforeRead()
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.clock.fed(b.idle)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.failure(err)
	}
	return n, err
}

func (b *watchedBody) failure(err error) error {
	if b.parent.Err() != nil {
		return modellab.WrapError(modellab.EUNAVAILABLE, b.parent.Err(), "the request was cancelled")
	}
	switch cause := context.Cause(b.ctx); {
	case errors.Is(cause, errFirstByte):
		return modellab.WrapError(modellab.EGATEWAYTIMEOUT, err, "the inference server sent nothing within %v", b.firstByte)
	case errors.Is(cause, errIdle):
		return modellab.WrapError(modellab.EGATEWAYTIMEOUT, err, "the inference server went silent for %v", b.idle)
	}
	return modellab.WrapError(modellab.EBADGATEWAY, err, "the inference server broke off its answer")
}
