package main

import (
	"context"
	"io"

	"github.com/modellab/modellab/loadtest"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return loadtest.Main(ctx, args, stdout, stderr)
}
