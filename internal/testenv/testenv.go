// Package testenv is the part of the test harnesses of server, web,
// faulttest and scaletest that is the same in all four: a migrated store
// with the admin user in it, an instance wired as cmd/modellab wires it, and
// calls to the JSON API. Only tests import it.
//
// What differs stays in each package: how the cache and server are wired,
// the proxies and timing of faulttest, the clusters of scaletest, the pages
// of web.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
	"github.com/modellab/modellab/web"
)

// Admin is the user the admin token acts as (the service's default). OpenStore
// creates its row as serve does, so that the admin's models have a real
// owner.
var Admin = service.DefaultAdmin

// StackConfig says how to wire one instance: the use cases, the JSON API
// (its Service field is filled in) and, when Pages is set, the pages.
type StackConfig struct {
	Service service.Config
	Server  server.Config
	Pages   bool
}

// Stack is one instance wired as cmd/modellab wires it.
type Stack struct {
	Service *service.Service
	API     *server.Server
	Pages   *web.Pages // nil without StackConfig.Pages
	Handler http.Handler
}

// NewStack wires an instance; the service is closed when t ends (the store
// and cache stay the caller's).
func NewStack(t testing.TB, cfg StackConfig) Stack {
	t.Helper()
	svc := service.New(cfg.Service)
	t.Cleanup(svc.Close)
	cfg.Server.Service = svc
	api := server.New(cfg.Server)
	mux := http.NewServeMux()
	api.Register(mux)
	var pages *web.Pages
	if cfg.Pages {
		var err error
		if pages, err = web.New(web.Config{Service: svc, Logger: cfg.Server.Logger}); err != nil {
			t.Fatal(err)
		}
		pages.Register(mux)
	}
	return Stack{Service: svc, API: api, Pages: pages, Handler: api.Handler(mux)}
}

// OpenStore opens the database at url, migrates it and creates Admin; the
// store is closed when t ends. It returns the error instead of failing t so
// that a harness running several instances can say which one failed.
func OpenStore(ctx context.Context, t testing.TB, url string, o store.Options) (*store.DB, error) {
	t.Helper()
	db, err := store.Open(ctx, url, o)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := db.EnsureUser(ctx, Admin); err != nil {
		return nil, fmt.Errorf("ensure admin: %w", err)
	}
	return db, nil
}

// Response is an answer read whole, so that a test can look at the body
// after the connection has gone back to the pool.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v and fails t if it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	DecodeJSON(t, r.Body, v)
}

// DecodeJSON is Response.JSON for harnesses that keep their own response
// type, so that a bad body fails every suite with the same message.
func DecodeJSON(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// NewRequest builds an API request. body is sent as is when it is a string
// or []byte (tests send malformed JSON on purpose), as JSON otherwise, and
// not at all when nil. hdr is name, value pairs; "Host" sets the request's
// Host, because the client ignores a Host header.
func NewRequest(method, url, token string, body any, hdr ...string) (*http.Request, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req, nil
}

// Send sends req with c and reads the answer whole. It never fails a test,
// so that load goroutines can use it; on a read error it returns what it
// got with the error.
func Send(c *http.Client, req *http.Request) (Response, error) {
	res, err := c.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// Client calls the API of one server and fails T when a call does not get
// through or does not answer as expected.
type Client struct {
	T          testing.TB
	URL        string       // the server's base URL
	HTTP       *http.Client // nil means http.DefaultClient
	AdminToken string       // User creates users with it
	// Name, when set, starts every failure message: a test running
	// several instances needs to know which one failed.
	Name string
}

func (c *Client) fatalf(format string, args ...any) {
	c.T.Helper()
	if c.Name != "" {
		format, args = "%s: "+format, append([]any{c.Name}, args...)
	}
	c.T.Fatalf(format, args...)
}

// Do sends one request (see NewRequest for body and hdr) and returns the
// answer whatever its status.
func (c *Client) Do(method, path, token string, body any, hdr ...string) Response {
	c.T.Helper()
	req, err := NewRequest(method, c.URL+path, token, body, hdr...)
	if err != nil {
		c.fatalf("%s %s: %v", method, path, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	r, err := Send(hc, req)
	if err != nil {
		c.fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// Must is Do that fails T unless the status is want.
func (c *Client) Must(want int, method, path, token string, body any, hdr ...string) Response {
	c.T.Helper()
	r := c.Do(method, path, token, body, hdr...)
	if r.Status != want {
		c.fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// User creates a user through the API and returns its token and ID.
func (c *Client) User(name string) (token, id string) {
	c.T.Helper()
	var out struct {
		User  modellab.User `json:"user"`
		Token string        `json:"token"`
	}
	c.Must(201, "POST", "/api/users", c.AdminToken, map[string]any{"name": name}).JSON(c.T, &out)
	return out.Token, out.User.ID
}

// Model creates a model as token through the API.
func (c *Client) Model(token string, body map[string]any) modellab.Model {
	c.T.Helper()
	var m modellab.Model
	c.Must(201, "POST", "/api/models", token, body).JSON(c.T, &m)
	return m
}

// FreeAddr is a loopback address with a port free a moment ago, for a
// process the test starts that must listen on a known address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
