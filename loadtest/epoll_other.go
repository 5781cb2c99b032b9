//go:build !linux

package loadtest

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Without epoll every run uses the goroutine client.

var epollEnabled = false

func epollUsable(Config, endpoint) bool { return false }

func runEpoll(*net.TCPAddr, *requestSet, time.Duration, time.Time, *atomic.Bool, []*recorder, bool) error {
	return errors.New("epoll engine: not on this system")
}
