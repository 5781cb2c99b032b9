package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path"
	"text/tabwriter"
	"time"

	"github.com/modellab/modellab/store"
)

// migrateArgs parses `migrate [status|up] [--database URL]`; flags may
// come before or after the action.
func migrateArgs(args []string, stdout, stderr io.Writer) (action, database string, code int, ok bool) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.StringVar(&database, "database", "", "database `URL`, sqlite://PATH or postgres://… (overrides DATABASE_URL)")
	if code, ok := parseFlags(fs, cmdMigrate, args, stdout, stderr); !ok {
		return "", "", code, false
	}
	action = "up"
	if fs.NArg() > 0 {
		action = fs.Arg(0)
		if code, ok := parseFlags(fs, cmdMigrate, fs.Args()[1:], stdout, stderr); !ok {
			return "", "", code, false
		}
		if fs.NArg() > 0 {
			return "", "", usageError(stderr, cmdMigrate, "unexpected arguments %q", fs.Args()), false
		}
	}
	if action != "up" && action != "status" {
		return "", "", usageError(stderr, cmdMigrate, "unknown action %q (want status or up)", action), false
	}
	return action, database, 0, true
}

// runMigrate applies (up, the default) or lists (status) the embedded
// migrations, then exits.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	action, database, code, ok := migrateArgs(args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := loadConfigFor(getenv, inDB)
	if err != nil {
		return usageError(stderr, cmdMigrate, "%v", err)
	}
	if database != "" {
		cfg.DatabaseURL = database
	}
	if err := checkDatabaseURL("--database", cfg.DatabaseURL); err != nil {
		return usageError(stderr, cmdMigrate, "%v", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: newLogger(stderr, cfg), QueryTimeout: time.Minute})
	if err != nil {
		fmt.Fprintf(stderr, "modellab migrate: open %s: %v\n", redactURL(cfg.DatabaseURL), err)
		return 1
	}
	defer db.Close()
	if action == "up" {
		applied, err := db.MigrateUp(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "modellab migrate: %v\n", err)
			return 1
		}
		for _, m := range applied {
			fmt.Fprintf(stdout, "applied %d %s\n", m.Version, path.Base(m.File))
		}
	}
	list, err := db.Migrations(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "modellab migrate: %v\n", err)
		return 1
	}
	if action == "status" {
		writeMigrations(stdout, list)
		return 0
	}
	var at int64
	for _, m := range list {
		if m.Applied {
			at = max(at, m.Version)
		}
	}
	fmt.Fprintf(stdout, "%s database %s is at version %d (%d migrations)\n", db.Engine(), redactURL(cfg.DatabaseURL), at, len(list))
	return 0
}

func writeMigrations(w io.Writer, list []store.Migration) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, m := range list {
		state, at := "pending", "-"
		if m.Applied {
			state, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, state, at, path.Base(m.File))
	}
	_ = tw.Flush()
}
