package loadtest

import (
	"testing"

	"go.uber.org/goleak"
)

// The engines start goroutines per connection, per event loop and for the
// progress line; every one must be gone when Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
