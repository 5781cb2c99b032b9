// Package testbin builds the modellab binary once per test process, for the
// tests that run `modellab serve` as a real child process (killed with
// SIGKILL, sent SIGTERM, put behind a load balancer). Only tests import it.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	path string
	dir  string
	err  error
)

// Path builds cmd/modellab on its first call and returns the binary's path;
// a failed build fails tb (and every later caller).
func Path(tb testing.TB) string {
	tb.Helper()
	once.Do(build)
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// build runs go build from the module's root, found from this file.
func build() {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err = os.MkdirTemp("", "modellab-bin-")
	if err != nil {
		return
	}
	path = filepath.Join(dir, "modellab")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/modellab")
	cmd.Dir = root
	if out, e := cmd.CombinedOutput(); e != nil {
		err = fmt.Errorf("go build: %v\n%s", e, out)
	}
}

// Cleanup removes the built binary; TestMain calls it after the tests.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}
