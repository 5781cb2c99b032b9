package main

import (
	"fmt"
	"net"
	"os"
)

// listenFD is the first file descriptor socket activation passes
// (SD_LISTEN_FDS_START).
const listenFD = 3

// listen returns the socket serve accepts on: the inherited one under
// socket activation, else a new one on cfg.Addr.
//
// Why inherit: a listening socket that this process opened dies with it,
// and the kernel resets every connection still queued for accept() when it
// closes. A proxy that already wrote a POST on such a connection cannot
// retry it. A socket held by the supervisor outlives the restart; what
// arrives meanwhile waits in its queue for the next process.
func listen(cfg config) (net.Listener, error) {
	if !cfg.Inherited {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		return ln, nil
	}
	f := os.NewFile(listenFD, "LISTEN_FDS")
	if f == nil {
		return nil, fmt.Errorf("LISTEN_FDS=1 but file descriptor %d is not open", listenFD)
	}
	// FileListener duplicates the descriptor; ours is not needed after.
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("LISTEN_FDS=1: file descriptor %d is not a listening socket: %w", listenFD, err)
	}
	return ln, nil
}
