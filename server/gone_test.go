package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/testenv"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// blockingModels holds ListModels until release is closed, as a slow
// database would.
type blockingModels struct {
	service.Store
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingModels) ListModels(ctx context.Context, ownerID string) ([]modellab.Model, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return b.Store.ListModels(ctx, ownerID)
}

// TestClientGoneIs499: a client that leaves while its answer is being
// loaded is counted as 499, and logged as neither an internal error nor a
// 500 (it used to be both).
func TestClientGoneIs499(t *testing.T) {
	bm := &blockingModels{started: make(chan struct{}), release: make(chan struct{})}
	logs := &testenv.SyncBuffer{}
	e := newEnv(t, envOpts{logs: logs, wrap: func(s service.Store) service.Store { bm.Store = s; return bm }})
	defer close(bm.release)

	ctx, leave := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/api/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	<-bm.started
	leave()
	if err := <-done; err == nil {
		t.Fatal("the request finished although its client left")
	}
	route := map[string]string{"route": "/api/models"}
	waitFor(t, 5*time.Second, func() bool {
		return e.metric("modellab_http_requests_total", map[string]string{"route": "/api/models", "code": "499"}) == 1
	})
	if n := e.metric("modellab_http_requests_total", route); n != 1 {
		t.Errorf("%v requests counted on the route, want 1 (the 499)", n)
	}
	if n := e.metric("modellab_http_requests_total", map[string]string{"code": "500"}); n != 0 {
		t.Errorf("%v requests counted as 500", n)
	}
	if l := logs.String(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "internal error") {
		t.Errorf("a client leaving was logged as an error:\n%s", l)
	}
}
