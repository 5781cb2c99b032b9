// Command modellab is the API server of a model lab and its tools: serve,
// seed, loadtest, bench, migrate, token and version. main only wires the process
// to run, so that tests can drive the whole program through run() on :0.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
  modellab seed      [--database URL] [--users N] [--models N] [--global-models N] [--servers N] [--events N] [--days N] [--runs N] [--inference-url URL]
  modellab loadtest  --url URL [--connections 200] [--duration 30s] [--rate R] [--token T | --users FILE] [--targets a,b] [--path /x] [--json]
  modellab bench     [--connections 200] [--duration 20s] [--database URL] [--redis URL] [--targets a,b] [--users FILE] [--json]
  modellab migrate   [status|up] [--database URL]
  modellab token     --user NAME [--name LABEL] [--expires-in DURATION] [--database URL]
  modellab version

Run 'modellab COMMAND --help' for a command's flags and the environment
variables it reads. Configuration is read from the environment; flags
override it.
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
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "token":
		return runToken(ctx, rest, getenv, stdout, stderr)
	case "version":
		return runVersion(rest, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" && !strings.HasPrefix(rest[0], "-") {
			return run(ctx, []string{args[0], rest[0], "--help"}, getenv, stdin, stdout, stderr)
		}
		writeTopHelp(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "modellab: unknown command %q\n\n%s", sub, usage)
		return 2
	}
}

// writeTopHelp prints the commands and the whole environment.
func writeTopHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprintln(w)
	writeEnv(w, inServe|inBench|inDB)
	fmt.Fprintln(w, "\nserve reads all of them; bench the tuning knobs; seed and migrate DATABASE_URL and LOG_*.")
}
