package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// command describes a subcommand for its --help: the synopsis, what it
// does, and which environment variables it reads.
type command struct {
	name    string
	args    string // the synopsis after "modellab NAME"
	summary string
	env     scope // 0: reads no environment variable
}

var (
	cmdServe = command{"serve", "[--addr ADDR] [--database URL] [--redis URL] [--demo|--demo=false]",
		"Runs the HTTP server (API + pages). Migrates the database on start. On a database without demo\n" +
			"data and with --demo (default: on for SQLite, off for PostgreSQL) it seeds a small demo data set\n" +
			"and prints the demo user's token; on a database seeded before it mints none and says how\n" +
			"(modellab token --user demo).", inServe}
	cmdSeed = command{"seed", "[--database URL] [--users N] [--models N] [--global-models N] [--servers N] [--events N] [--days N] [--seed N]",
		"Fills an empty database with a deterministic demo data set and prints the users and their\n" +
			"tokens as JSON on stdout.", inDB}
	cmdBench = command{"bench", "[--connections 200] [--duration 20s] [--database URL] [--redis URL] [--targets a,b] [--size default|demo] [--json]",
		"The before/after experiment: starts the server in-process twice over the same data, cache off\n" +
			"then cache on, loads each with the same targets and prints both tables side by side.", inBench}
	cmdMigrate = command{"migrate", "[status|up] [--database URL]",
		"Applies the embedded database migrations that are not applied yet (up, the default), or lists\n" +
			"every migration and whether it is applied (status), then exits. serve also migrates on start.", inDB}
	cmdToken = command{"token", "--user NAME [--name LABEL] [--expires-in DURATION] [--database URL]",
		"Mints an API token for an existing user directly in the database and prints it once on stdout\n" +
			"(for operators, and for the demo user after a restart: tokens are stored hashed, so a lost\n" +
			"one cannot be shown again). --expires-in is a Go duration (720h, 90s); without it the token\n" +
			"never expires.", inDB}
	cmdVersion = command{"version", "",
		"Prints the version, the commit and the Go version the binary was built with (also exported\n" +
			"as the modellab_build_info metric).", 0}
	cmdProbe = command{"probe", "[--timeout 2s] [URL]",
		"Health probe for containers without a shell: GETs URL (default: /healthz on the address that\n" +
			"ADDR or PORT names, on 127.0.0.1) and exits 0 on a 2xx answer, 1 otherwise.", inProbe}
)

// parseFlags parses a subcommand's flags. -h and --help print the help on
// stdout and end the command with status 0, whatever the environment holds;
// a bad flag prints the error on stderr and ends it with 2. ok is true when
// the command should go on.
func parseFlags(fs *flag.FlagSet, c command, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard) // errors are printed below, help on stdout
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeHelp(stdout, fs, c)
		return 0, false
	case err != nil:
		fmt.Fprintf(stderr, "modellab %s: %v\nrun 'modellab %s --help' for usage\n", c.name, err, c.name)
		return 2, false
	}
	return 0, true
}

// usageError prints a usage error of command c and returns the exit status.
func usageError(stderr io.Writer, c command, format string, a ...any) int {
	fmt.Fprintf(stderr, "modellab %s: %s\n", c.name, fmt.Sprintf(format, a...))
	return 2
}

// writeHelp prints the synopsis, the summary, the flags and the
// environment variables of c.
func writeHelp(w io.Writer, fs *flag.FlagSet, c command) {
	fmt.Fprintf(w, "Usage: modellab %s %s\n\n%s\n", c.name, c.args, c.summary)
	if fs != nil {
		fmt.Fprintf(w, "\nFlags:\n")
		writeFlags(w, fs)
	}
	fmt.Fprintln(w)
	writeEnv(w, c.env)
}

// writeFlags is flag.PrintDefaults with the double-dash spelling the
// documentation uses.
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		typ, usage := flag.UnquoteUsage(f)
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			typ = ""
		}
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n        %s", line, strings.ReplaceAll(usage, "\n", "\n        "))
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
	if n == 0 {
		fmt.Fprintln(w, "  (none)")
	}
}

// writeEnv prints the environment variables of scope sc, with their
// defaults and meanings, as the README's table does.
func writeEnv(w io.Writer, sc scope) {
	var vars []envVar
	for _, v := range envVars {
		if v.scope&sc != 0 {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		fmt.Fprintln(w, "Environment: none (this command reads no environment variable).")
		return
	}
	fmt.Fprintln(w, "Environment (flags override it; a bad value is fatal, naming the variable):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range vars {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.name, plain(v.shownDefault()), plain(v.meaning))
	}
	_ = tw.Flush()
}

// shownDefault is the default as documented, in Markdown.
func (v envVar) shownDefault() string {
	switch {
	case v.shown != "":
		return v.shown
	case v.def == "":
		return "—"
	}
	return "`" + v.def + "`"
}

// plain drops the Markdown code marks for the terminal.
func plain(md string) string { return strings.ReplaceAll(md, "`", "") }

// envMarkdown is the README's configuration table, generated from envVars.
func envMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	for _, v := range envVars {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, v.shownDefault(), v.meaning)
	}
	return b.String()
}

// autoBool is a boolean flag that remembers whether it was given, for a
// default that depends on other settings (--demo: on for SQLite only). As a
// boolean flag, "--demo" alone means true and "--demo=false" false.
type autoBool struct {
	set, v bool
}

func (b *autoBool) IsBoolFlag() bool { return true }

func (b *autoBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false")
	}
	b.v, b.set = v, true
	return nil
}

func (b *autoBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatBool(b.v)
}

// or returns the given value, or def when the flag was not given.
func (b *autoBool) or(def bool) bool {
	if b.set {
		return b.v
	}
	return def
}
