package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
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
// run completed (failed requests are reported, not fatal), 2 on bad
// arguments, 1 when the URL cannot be reached at all or ctx ended the run
// (what was measured so far is still printed).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "base URL of the server, http://host:port (required)")
	conns := fs.Int("connections", DefaultConnections, "concurrent keep-alive connections")
	duration := fs.Duration("duration", DefaultDuration, "how long to load each target")
	rate := fs.Float64("rate", 0, "open loop at this many requests/s in total (0: closed loop)")
	token := fs.String("token", "", "bearer token sent as Authorization: Bearer")
	users := fs.String("users", "", "a `FILE` holding the JSON that modellab seed prints: spread the requests over those users' tokens (a crowd)")
	targets := fs.String("targets", "", "comma separated target names: "+strings.Join(TargetNames(), ","))
	var paths pathList
	fs.Var(&paths, "path", "a path to load, like /api/models?limit=10 (repeatable, or a comma separated list)")
	var headers headerList
	fs.Var(&headers, "header", `extra request header "Name: value", e.g. "Cookie: modellab_session=…" to load pages (repeatable)`)
	timeout := fs.Duration("timeout", DefaultTimeout, "per request timeout")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: modellab loadtest --url URL [--connections 200] [--duration 30s] [--rate R] [--token T | --users FILE] [--targets home,models,…] [--path /x] [--header \"K: V\"] [--json]\n\n")
		fmt.Fprintf(stderr, "Runs each target in turn for --duration over --connections connections and prints, per target,\n")
		fmt.Fprintf(stderr, "requests, req/s, latencies and failures (transport errors and statuses >= 400; redirects are not followed).\n")
		fmt.Fprintf(stderr, "Without --targets or --path: api-models,api-servers,api-analytics with --token, else api-models.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "loadtest: "+format+"\n", a...)
		fmt.Fprintf(stderr, "run 'modellab loadtest --help' for usage\n")
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if *rawURL == "" {
		return bad("--url is required")
	}
	if _, err := parseURL(*rawURL); err != nil {
		return bad("%v", err)
	}
	if *conns < 1 {
		return bad("--connections must be at least 1, got %d", *conns)
	}
	if *duration <= 0 {
		return bad("--duration must be positive, got %v", *duration)
	}
	if *rate < 0 {
		return bad("--rate must not be negative, got %v", *rate)
	}
	if *timeout <= 0 {
		return bad("--timeout must be positive, got %v", *timeout)
	}

	var list []Target
	if *targets != "" {
		var err error
		if list, err = ParseTargets(*targets); err != nil {
			return bad("--targets: %v", err)
		}
	}
	for _, p := range paths {
		list = append(list, Target{Name: p, Path: p})
	}
	if len(list) == 0 {
		list = DefaultTargets(*token != "" || *users != "")
	}
	var crowd []string
	if *users != "" {
		var err error
		if crowd, err = LoadUsers(*users); err != nil {
			return bad("--users: %v", err)
		}
	}

	cfg := Config{
		URL:         *rawURL,
		Connections: *conns,
		Duration:    *duration,
		Rate:        *rate,
		Token:       *token,
		Tokens:      crowd,
		Targets:     list,
		Progress:    stderr,
		Timeout:     *timeout,
		Headers:     headers,
	}
	rep, err := Run(ctx, cfg)
	if errors.Is(err, ErrUnreachable) {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if err != nil && len(rep.Targets) == 0 {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if werr := write(stdout, rep, *asJSON); werr != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", werr)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: interrupted: %v\n", err)
		return 1
	}
	return 0
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
