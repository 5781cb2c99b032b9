package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The server starts goroutines for background refreshes, token lookups and
// the cache's Redis connection; closing a test's server must stop them all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
