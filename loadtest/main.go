package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// pathList is the repeatable --path flag; each value may also be a comma
// separated list.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ",") }

func (p *pathList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.HasPrefix(s, "/") {
			return fmt.Errorf("path %q must start with /", s)
		}
		if strings.ContainsAny(s, " \t\r\n") {
			return fmt.Errorf("path %q contains white space", s)
		}
		*p = append(*p, s)
	}
	return nil
}

// headerList is the repeatable --header flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "; ") }

func (h *headerList) Set(v string) error {
	if err := checkHeader(v); err != nil {
		return err
	}
	*h = append(*h, strings.TrimSpace(v))
	return nil
}

// Main is the `modellab loadtest` subcommand; args exclude the subcommand
// name. It prints the table (or, with --json, the Report as JSON) on stdout
// and the progress line on stderr. It returns the exit status: 0 when the
// run completed (failed requests are reported, not fatal) and after
// --help (printed on stdout), 2 on bad arguments, 1 when the URL cannot be
// reached at all or ctx ended the run (what was measured so far is still
// printed).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f mainFlags
	fs := f.flagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeHelp(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "loadtest: %v\nrun 'modellab loadtest --help' for usage\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		f.err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := f.config()
	if f.err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\nrun 'modellab loadtest --help' for usage\n", f.err)
		return 2
	}
	cfg.Progress = stderr
	return runAndReport(ctx, cfg, f.asJSON, stdout, stderr)
}

// mainFlags are the command line of Main.
type mainFlags struct {
	url, token, targets string
	users               string
	conns               int
	duration, timeout   time.Duration
	rate                float64
	paths               pathList
	headers             headerList
	asJSON              bool
	err                 error // the first bad argument
}

func (f *mainFlags) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Main prints errors and help itself
	fs.StringVar(&f.url, "url", "", "base `URL` of the server, http://host:port (required)")
	fs.IntVar(&f.conns, "connections", DefaultConnections, "concurrent keep-alive connections")
	fs.DurationVar(&f.duration, "duration", DefaultDuration, "how long to load each target")
	fs.Float64Var(&f.rate, "rate", 0, "open loop at this many requests/s in total (0: closed loop)")
	fs.StringVar(&f.token, "token", "", "bearer token sent as Authorization: Bearer")
	fs.StringVar(&f.users, "users", "", "a `FILE` holding the JSON that modellab seed prints: spread the requests over those users' tokens (a crowd)")
	fs.StringVar(&f.targets, "targets", "", "comma separated target `names`: "+strings.Join(TargetNames(), ","))
	fs.Var(&f.paths, "path", "a `path` to load, like /api/models?limit=10 (repeatable, or a comma separated list)")
	fs.Var(&f.headers, "header", `extra request header "Name: value", e.g. "Cookie: modellab_session=…" to load pages (repeatable)`)
	fs.DurationVar(&f.timeout, "timeout", DefaultTimeout, "per request timeout")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	return fs
}

// config checks the flags and builds the run's Config; the first problem
// is left in f.err.
func (f *mainFlags) config() Config {
	check := func(bad bool, format string, a ...any) {
		if bad && f.err == nil {
			f.err = fmt.Errorf(format, a...)
		}
	}
	check(f.url == "", "--url is required")
	if _, err := parseURL(f.url); f.url != "" && err != nil {
		check(true, "%v", err)
	}
	check(f.conns < 1, "--connections must be at least 1, got %d", f.conns)
	check(f.duration <= 0, "--duration must be positive, got %v", f.duration)
	check(f.rate < 0, "--rate must not be negative, got %v", f.rate)
	check(f.timeout <= 0, "--timeout must be positive, got %v", f.timeout)
	var list []Target
	if f.targets != "" {
		var err error
		if list, err = ParseTargets(f.targets); err != nil {
			check(true, "--targets: %v", err)
		}
	}
	for _, p := range f.paths {
		list = append(list, Target{Name: p, Path: p})
	}
	if len(list) == 0 {
		list = DefaultTargets(f.token != "" || f.users != "")
	}
	var crowd []string
	if f.users != "" {
		var err error
		if crowd, err = LoadUsers(f.users); err != nil {
			check(true, "--users: %v", err)
		}
	}
	return Config{URL: f.url, Connections: f.conns, Duration: f.duration, Rate: f.rate, Token: f.token,
		Tokens: crowd, Targets: list, Timeout: f.timeout, Headers: f.headers}
}

// runAndReport runs the load and prints the report; see Main for the exit
// statuses.
func runAndReport(ctx context.Context, cfg Config, asJSON bool, stdout, stderr io.Writer) int {
	rep, err := Run(ctx, cfg)
	if errors.Is(err, ErrUnreachable) {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if err != nil && len(rep.Targets) == 0 {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if werr := write(stdout, rep, asJSON); werr != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", werr)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: interrupted: %v\n", err)
		return 1
	}
	return 0
}

// writeHelp prints the usage, the flags and the (empty) environment, in
// the layout of the other modellab commands.
func writeHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: modellab loadtest --url URL [--connections 200] [--duration 30s] [--rate R] [--token T | --users FILE] [--targets home,models,…] [--path /x] [--header \"K: V\"] [--json]\n\n")
	fmt.Fprintf(w, "Runs each target in turn for --duration over --connections connections and prints, per target,\n")
	fmt.Fprintf(w, "requests, req/s, latencies and failures (transport errors and statuses >= 400; redirects are not followed).\n")
	fmt.Fprintf(w, "Without --targets or --path: api-models,api-servers,api-analytics with --token, else api-models.\n\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n        %s", line, usage)
		if d := f.DefValue; d != "" && d != "0" && d != "false" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintln(w, "\nEnvironment: none (this command reads no environment variable).")
}

// ParseTargets parses a comma separated list of target names (see
// NamedTarget); an entry starting with "/" is a path, loaded as a target of
// that name. It fails on an unknown name and on an empty list.
func ParseTargets(list string) ([]Target, error) {
	var out []Target
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case strings.HasPrefix(name, "/"):
			if strings.ContainsAny(name, " \t\r\n") {
				return nil, fmt.Errorf("path %q contains white space", name)
			}
			out = append(out, Target{Name: name, Path: name})
		default:
			t, ok := NamedTarget(name)
			if !ok {
				return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
			}
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("names no target")
	}
	return out, nil
}

// DefaultTargets are the targets loaded when none are named: the three
// cached APIs with a token, else only api-models.
func DefaultTargets(withToken bool) []Target {
	names := []string{"api-models"}
	if withToken {
		names = append(names, "api-servers", "api-analytics")
	}
	var list []Target
	for _, n := range names {
		t, _ := NamedTarget(n)
		list = append(list, t)
	}
	return list
}

func write(w io.Writer, rep Report, asJSON bool) error {
	if !asJSON {
		return rep.WriteTable(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
