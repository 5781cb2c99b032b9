package service

import (
	"context"
	"time"

	"github.com/modellab/modellab"
)

// Completions record their usage through the same ingest path as
// POST /api/analytics/events, but not one by one from the request: a
// recorder batches them (one IngestEvents per user per batch), so that
// hundreds of streams ending together cost a few writes, and the end of a
// stream never waits for the database nor fails with it.
const (
	usageQueue     = 10_000
	usageBatch     = modellab.MaxEventsPerBatch
	usageLinger    = 100 * time.Millisecond
	usageTimeout   = 10 * time.Second
	usageRetries   = 3
	usageRetryWait = 200 * time.Millisecond
)

type usageRecord struct {
	user modellab.User
	ev   EventInput
}

type usageRecorder struct {
	s       *Service
	ch      chan usageRecord
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newUsageRecorder(s *Service) *usageRecorder {
	r := &usageRecorder{s: s, ch: make(chan usageRecord, usageQueue), flushes: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// add queues one event; a full queue drops it (and says so) rather than
// slowing the completion down.
func (r *usageRecorder) add(u modellab.User, ev EventInput) {
	select {
	case r.ch <- usageRecord{user: u, ev: ev}:
	default:
		r.s.log.Warn("usage event dropped: the queue is full", "user_id", u.ID, "model_id", ev.ModelID)
	}
}

func (r *usageRecorder) run() {
	defer close(r.done)
	var batch []usageRecord
	for {
		select {
		case rec := <-r.ch:
			batch = r.gather(append(batch[:0], rec))
			r.write(batch)
		case ack := <-r.flushes:
			r.write(r.drain(batch[:0]))
			close(ack)
		case <-r.stop:
			r.write(r.drain(batch[:0]))
			return
		}
	}
}

// gather waits a little for more events, so that a burst becomes a batch.
func (r *usageRecorder) gather(batch []usageRecord) []usageRecord {
	t := time.NewTimer(usageLinger)
	defer t.Stop()
	for len(batch) < usageBatch {
		select {
		case rec := <-r.ch:
			batch = append(batch, rec)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// drain takes everything queued, without waiting.
func (r *usageRecorder) drain(batch []usageRecord) []usageRecord {
	for {
		select {
		case rec := <-r.ch:
			batch = append(batch, rec)
		default:
			return batch
		}
	}
}

// write ingests the batch, user by user, retrying while the database is
// unavailable for a little while.
func (r *usageRecorder) write(batch []usageRecord) {
	byUser := map[string][]EventInput{}
	users := map[string]modellab.User{}
	for _, rec := range batch {
		byUser[rec.user.ID] = append(byUser[rec.user.ID], rec.ev)
		users[rec.user.ID] = rec.user
	}
	for id, evs := range byUser {
		u := users[id]
		for len(evs) > 0 {
			n := min(len(evs), usageBatch)
			r.ingest(&u, evs[:n])
			evs = evs[n:]
		}
	}
}

func (r *usageRecorder) ingest(u *modellab.User, evs []EventInput) {
	var err error
	for i := 0; i < usageRetries; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), usageTimeout)
		_, err = r.s.IngestEvents(ctx, u, evs)
		cancel()
		if modellab.ErrorCode(err) != modellab.EUNAVAILABLE {
			break
		}
		time.Sleep(usageRetryWait << i)
	}
	if err != nil {
		r.s.log.Warn("usage events not recorded", "user_id", u.ID, "events", len(evs), "err", err)
	}
}

// flush returns once everything queued before the call is written.
func (r *usageRecorder) flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case r.flushes <- ack:
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *usageRecorder) close() {
	close(r.stop)
	<-r.done
}

// FlushUsage returns once the usage events of the completions that ended
// before the call are stored (tests and shutdown use it).
func (s *Service) FlushUsage(ctx context.Context) error { return s.usage.flush(ctx) }
