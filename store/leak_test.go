package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (database pools, servers, caches) must be
// gone when it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
