//go:build race

package faulttest_test

// raceEnabled: the race detector slows every goroutine several times over,
// so latency ratios measured under it say more about the detector than
// about the server.
const raceEnabled = true
