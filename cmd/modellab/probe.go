package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runProbe is the health check of a container image that has no shell and
// no curl: it GETs a URL and exits 0 on a 2xx answer, 1 otherwise.
func runProbe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this `duration`")
	if code, ok := parseFlags(fs, cmdProbe, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 1 || *timeout <= 0 {
		return usageError(stderr, cmdProbe, "want at most one URL and a positive --timeout")
	}
	url := fs.Arg(0)
	if url == "" {
		cfg, err := loadConfigFor(getenv, inProbe)
		if err != nil {
			return usageError(stderr, cmdProbe, "%v", err)
		}
		url = "http://" + probeAddr(cfg.Addr) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError(stderr, cmdProbe, "%v", err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "modellab probe: %v\n", err)
		return 1
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		fmt.Fprintf(stderr, "modellab probe: GET %s: %s\n", url, res.Status)
		return 1
	}
	fmt.Fprintf(stdout, "GET %s: %s\n", url, res.Status)
	return 0
}

// probeAddr turns a listen address into one to connect to on this host:
// ":8080" and "0.0.0.0:8080" become "127.0.0.1:8080".
func probeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
