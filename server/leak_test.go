package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The server starts goroutines for background refreshes, token lookups and
// the cache's Redis connection; closing a test's server must stop them all.
func TestMain(m *testing.M) {
	// The code highlighter of the academy's lessons (regexp2's match
	// timeouts) keeps a clock goroutine for about a second after rendering;
	// it stops by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dlclark/regexp2/v2.runClock"))
}
