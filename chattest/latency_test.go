package chattest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/modellab/modellab/internal/fakeopenai"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkChunkLatency measures what the gateway adds to each chunk of a
// stream: the fake upstream writes its clock into every chunk, the client
// subtracts it from its own clock when it reads the chunk. The same
// streams are read directly from the upstream and through `modellab
// serve`, in alternating rounds; the difference of the percentiles is the
// gateway's share (the client and the upstream cost the same both ways).
// Each stream starts at a random offset within one chunk interval, as real
// streams do, instead of all writing in the same instant.
//
//	CHATBENCH_STREAMS (200) CHATBENCH_CHUNKS (100) CHATBENCH_DELAY_MS (20) CHATBENCH_ROUNDS (3)
//	CHATBENCH_DEBUG_ADDR: the gateway's pprof listener (DEBUG_ADDR)
func BenchmarkChunkLatency(b *testing.B) {
	up := clockUpstream(b)
	var env []string
	if a := os.Getenv("CHATBENCH_DEBUG_ADDR"); a != "" {
		env = append(env, "DEBUG_ADDR="+a) // to profile the gateway while it relays
	}
	proc, url := serve(b, env...)
	pid := proc.cmd.Process.Pid
	benchChunks(b, up, url, func() time.Duration { return cpuTime(b, pid) })
}

// clockUpstream is the fake inference server of the latency benchmarks.
func clockUpstream(b *testing.B) *fakeopenai.Server {
	up := fakeopenai.New(b)
	up.Chunks = envInt("CHATBENCH_CHUNKS", 100)
	up.Delay = time.Duration(envInt("CHATBENCH_DELAY_MS", 20)) * time.Millisecond
	return up
}

// benchChunks runs the alternating rounds against the gateway at url and
// reports the medians; cpu, when set, reads the gateway's CPU time.
func benchChunks(b *testing.B, up *fakeopenai.Server, url string, cpu func() time.Duration) {
	streams, rounds := envInt("CHATBENCH_STREAMS", 200), envInt("CHATBENCH_ROUNDS", 3)
	l := newLab(b, url)
	l.model("clock", fakeopenai.Clock, up.BaseURL())
	targets := []clockTarget{{name: "direct", url: up.BaseURL() + "/chat/completions"},
		{name: "gateway", url: url + "/v1/chat/completions", token: l.token}}
	b.Logf("load average before: %s", loadavg())
	var p50s, p99s [2][]float64
	var spent time.Duration
	var relayed int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			for k, target := range targets {
				var cpu0 time.Duration
				if cpu != nil {
					cpu0 = cpu()
				}
				res := target.run(b, streams, up.Delay)
				if res.failures > 0 || res.chunks != int64(streams*up.Chunks) {
					b.Fatalf("round %d %s: %d failures, %d of %d chunks", r, target.name, res.failures, res.chunks, streams*up.Chunks)
				}
				if k == 1 && cpu != nil {
					spent += cpu() - cpu0
					relayed += res.chunks
				}
				p50s[k] = append(p50s[k], float64(res.h.ValueAtQuantile(50)))
				p99s[k] = append(p99s[k], float64(res.h.ValueAtQuantile(99)))
				b.Logf("round %d %-7s: %d chunks, P50 %d µs, P99 %d µs, max %d µs", r, target.name,
					res.chunks, res.h.ValueAtQuantile(50), res.h.ValueAtQuantile(99), res.h.Max())
			}
		}
	}
	b.StopTimer()
	b.Logf("load average after: %s", loadavg())
	b.ReportMetric(median(p50s[0]), "direct-p50-µs")
	b.ReportMetric(median(p99s[0]), "direct-p99-µs")
	b.ReportMetric(median(p50s[1]), "gateway-p50-µs")
	b.ReportMetric(median(p99s[1]), "gateway-p99-µs")
	b.ReportMetric(median(p50s[1])-median(p50s[0]), "added-p50-µs")
	b.ReportMetric(median(p99s[1])-median(p99s[0]), "added-p99-µs")
	if cpu != nil {
		// The CPU the gateway spent per chunk relayed (a whole stream's
		// work — the request, the upstream connection, the usage event —
		// divided by its chunks).
		b.ReportMetric(float64(spent.Microseconds())/float64(relayed), "gateway-cpu-µs/chunk")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// clockTarget is where clock streams are read from.
type clockTarget struct {
	name, url, token string
}

type clockResult struct {
	h        *hdrhistogram.Histogram
	chunks   int64
	failures int64
}

// run reads streams clock streams at once and histograms the latency of
// each chunk, in µs.
func (c clockTarget) run(b *testing.B, streams int, delay time.Duration) clockResult {
	b.Helper()
	res := clockResult{h: hdrhistogram.New(1, 60_000_000, 3)}
	var mu sync.Mutex
	var chunks, failures atomic.Int64
	var wg sync.WaitGroup
	body, _ := json.Marshal(map[string]any{"model": "clock", "stream": true, "messages": []map[string]string{{"role": "user", "content": "t"}}})
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(delay) + 1)))
			lat, err := c.read(body)
			if err != nil {
				failures.Add(1)
			}
			mu.Lock()
			for _, v := range lat {
				_ = res.h.RecordValue(v)
			}
			mu.Unlock()
			chunks.Add(int64(len(lat)))
		}()
	}
	wg.Wait()
	res.chunks, res.failures = chunks.Load(), failures.Load()
	return res
}

var contentKey = []byte(`"content":"`)

// read reads one stream and returns the latency of each timestamped chunk.
// The clock is read as soon as a line is in, before any parsing.
func (c clockTarget) read(body []byte) ([]int64, error) {
	req, err := http.NewRequest("POST", c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, errStatus(res.StatusCode)
	}
	br := bufio.NewReaderSize(res.Body, 64<<10)
	var out []int64
	done := false
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now().UnixNano()
		if err != nil {
			if done {
				return out, nil
			}
			return out, err
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			done = true
			continue
		}
		i := bytes.Index(line, contentKey)
		if i < 0 {
			continue
		}
		rest := line[i+len(contentKey):]
		j := bytes.IndexByte(rest, '"')
		ts, err := strconv.ParseInt(string(rest[:max(j, 0)]), 10, 64)
		if err == nil {
			out = append(out, max((now-ts)/1000, 1))
		}
	}
}

type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

// cpuTime is the user and system CPU time of process pid so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
