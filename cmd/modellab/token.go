package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

// tokenArgs are the flags of `modellab token`.
type tokenArgs struct {
	database, user, name string
	expiresIn            time.Duration
}

func parseTokenArgs(args []string, stdout, stderr io.Writer) (tokenArgs, int, bool) {
	var a tokenArgs
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.StringVar(&a.database, "database", "", "database `URL`, sqlite://PATH or postgres://… (overrides DATABASE_URL)")
	fs.StringVar(&a.user, "user", "", "the `NAME` of the user the token is for (required)")
	fs.StringVar(&a.name, "name", "cli", "a `LABEL` for the token, shown in its list")
	fs.DurationVar(&a.expiresIn, "expires-in", 0, "lifetime, a Go `DURATION` (720h, 90s); 0: never expires")
	if code, ok := parseFlags(fs, cmdToken, args, stdout, stderr); !ok {
		return a, code, false
	}
	switch {
	case fs.NArg() > 0:
		return a, usageError(stderr, cmdToken, "unexpected arguments %q", fs.Args()), false
	case a.user == "":
		return a, usageError(stderr, cmdToken, "--user is required"), false
	case a.expiresIn < 0 || a.expiresIn > modellab.MaxTokenLifetime:
		return a, usageError(stderr, cmdToken, "--expires-in must be positive (and at most %s), or 0 for a token that never expires", modellab.MaxTokenLifetime), false
	case a.expiresIn > 0 && a.expiresIn < time.Second:
		return a, usageError(stderr, cmdToken, "--expires-in must be at least 1s"), false
	}
	return a, 0, true
}

// runToken mints an API token for an existing user directly in the
// database and prints its secret, once, on stdout (details on stderr, so
// that `TOKEN=$(modellab token --user demo)` works).
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a, code, ok := parseTokenArgs(args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := loadConfigFor(getenv, inDB)
	if err != nil {
		return usageError(stderr, cmdToken, "%v", err)
	}
	if a.database != "" {
		cfg.DatabaseURL = a.database
	}
	if err := checkDatabaseURL("--database", cfg.DatabaseURL); err != nil {
		return usageError(stderr, cmdToken, "%v", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: newLogger(stderr, cfg), QueryTimeout: time.Minute})
	if err != nil {
		fmt.Fprintf(stderr, "modellab token: open %s: %v\n", redactURL(cfg.DatabaseURL), err)
		return 1
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		fmt.Fprintf(stderr, "modellab token: migrate: %v\n", err)
		return 1
	}
	secret, err := db.IssueToken(ctx, a.user, a.name, a.expiresIn)
	if err != nil {
		fmt.Fprintf(stderr, "modellab token: %s\n", tokenFailure(err))
		return 1
	}
	fmt.Fprintln(stdout, secret)
	expiry := "never expires"
	if a.expiresIn > 0 {
		expiry = "expires in " + a.expiresIn.String()
	}
	fmt.Fprintf(stderr, "token %q for user %q (%s); it is shown only this once\n", a.name, a.user, expiry)
	return 0
}

func tokenFailure(err error) string {
	var me *modellab.Error
	if errors.As(err, &me) && me.Code != modellab.EINTERNAL {
		return me.Message
	}
	return err.Error()
}
