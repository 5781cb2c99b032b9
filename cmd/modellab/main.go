// Command modellab is the API server of a model lab and its tools: serve,
// seed, loadtest and bench. main only wires the process to run, so that
// tests can drive the whole program through run() on :0.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `modellab — the API server of a model lab

Usage:
  modellab serve     [--addr :8080] [--database URL] [--redis URL] [--demo|--demo=false]
  modellab seed      [--database URL] [--users N] [--models N] [--global-models N] [--servers N] [--events N] [--days N]
  modellab loadtest  --url URL [--connections 200] [--duration 30s] [--rate R] [--token T | --users FILE] [--targets a,b] [--path /x] [--json]
  modellab bench     [--connections 200] [--duration 20s] [--database URL] [--redis URL] [--targets a,b] [--users FILE] [--json]

Configuration is read from the environment (see README.md); flags override it.
`

// run is the whole program. It returns the exit status: 0 ok, 1 failure,
// 2 bad usage.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub, rest := args[1], args[2:]
	switch sub {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "modellab: unknown command %q\n\n%s", sub, usage)
		return 2
	}
}
