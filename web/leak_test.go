package web_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (database pools, servers, caches) must be
// gone when it ends.
func TestMain(m *testing.M) {
	// The code highlighter of the academy's lessons (regexp2's match
	// timeouts) keeps a clock goroutine for about a second after rendering;
	// it stops by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dlclark/regexp2/v2.runClock"))
}
