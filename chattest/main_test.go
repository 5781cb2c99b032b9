// Package chattest_test measures and proves the chat gateway end to end,
// against the real binary: the latency it adds to each streamed chunk,
// hundreds of long streams at once, and what happens when the inference
// server or the client is killed mid-stream.
//
// The gateway is `modellab serve`, built once into a temporary directory,
// with its production timeouts. The inference servers are fakes
// (internal/fakeopenai), in this process or — to be killed with SIGKILL —
// in a child process: the test binary run again in a role (CHATTEST_ROLE).
// Clients are plain HTTP readers in this process, or a child process for
// the same reason.
//
//	go test ./chattest/                                    # the kill tests and a short soak
//	go test -run '^$' -bench ChunkLatency -benchtime 1x ./chattest/
//	MODELLAB_CHAT_SOAK=1 go test -run TestSoak -v -timeout 10m ./chattest/
//
// Everything listens on 127.0.0.1 and is bounded in count and time.
package chattest_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modellab/modellab/internal/fakeopenai"
	"github.com/modellab/modellab/internal/testbin"
)

func TestMain(m *testing.M) {
	switch os.Getenv("CHATTEST_ROLE") {
	case "upstream":
		runUpstream()
		return
	case "client":
		os.Exit(runClient())
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// runUpstream is the child that plays the inference server: it prints its
// base URL and serves until it is killed.
func runUpstream() {
	s := fakeopenai.NewUnstarted()
	s.Delay = 200 * time.Millisecond
	s.Start()
	fmt.Println("upstream " + s.BaseURL())
	select {}
}

// runClient is the child that plays a browser: it sends one message and
// prints every event line as it arrives, until the stream ends or it is
// killed.
func runClient() int {
	url, token := os.Getenv("CHATTEST_URL"), os.Getenv("CHATTEST_TOKEN")
	req, err := http.NewRequest("POST", url, strings.NewReader(`{"content": "tell me everything"}`))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if sc.Text() != "" {
			fmt.Println(sc.Text())
		}
	}
	return 0
}

// binary is the modellab binary, built once per test run.
func binary(t testing.TB) string { return testbin.Path(t) }
