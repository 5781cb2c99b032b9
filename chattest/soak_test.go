package chattest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/fakeopenai"
)

// TestSoakStreams holds many long streams at once through `modellab serve`
// (with its production read and write timeouts, which every stream
// outlives): a fifth are conversation messages, stored as they stream, the
// rest OpenAI completions. Every stream must arrive whole; the server's
// heap and RSS at the peak, less before, divided by the streams, is the
// memory one stream costs; afterwards its goroutines come back down.
//
// By default 20 streams of 2 s. MODELLAB_CHAT_SOAK=1: 500 streams of 30 s
// (CHATSOAK_STREAMS, CHATSOAK_SECONDS change them).
func TestSoakStreams(t *testing.T) {
	streams, seconds := 20, 2
	if os.Getenv("MODELLAB_CHAT_SOAK") != "" {
		streams, seconds = envInt("CHATSOAK_STREAMS", 500), envInt("CHATSOAK_SECONDS", 30)
	}
	up := fakeopenai.New(t)
	up.Delay = 100 * time.Millisecond
	up.Chunks = seconds * 10
	proc, url := serve(t)
	l := newLab(t, url)
	m := l.model("clock", fakeopenai.Clock, up.BaseURL())
	msgStreams := streams / 5
	convs := make([]string, msgStreams)
	for i := range convs {
		convs[i] = l.conversation(m)
	}
	// One stream first: connections and caches warm, then the baseline.
	if err := readCompletion(l, up.Chunks); err != nil {
		t.Fatalf("warm-up stream: %v", err)
	}
	time.Sleep(time.Second)
	before := sample(t, url, proc.cmd.Process.Pid)
	t.Logf("load average %s; %d streams of %ds (%d messages), %d chunks each", loadavg(), streams, seconds, msgStreams, up.Chunks)

	start := time.Now()
	peak := soak(t, soakRun{lab: l, convs: convs, streams: streams, chunks: up.Chunks,
		peakAt: time.Duration(seconds) * time.Second / 2, sample: func() memSample { return sample(t, url, proc.cmd.Process.Pid) }})
	took := time.Since(start)
	perStream := func(a, b float64) string { return fmt.Sprintf("%.1f KiB", (b-a)/float64(streams)/1024) }
	t.Logf("%d streams, 0 failures, %v; per stream: heap %s, RSS %s, %.1f goroutines (peak heap %.1f MiB, RSS %.1f MiB, %0.f goroutines)",
		streams, took.Round(time.Millisecond), perStream(before.heap, peak.heap), perStream(before.rss, peak.rss),
		(peak.goroutines-before.goroutines)/float64(streams), peak.heap/(1<<20), peak.rss/(1<<20), peak.goroutines)
	for _, c := range convs {
		ms := l.messages(c)
		if len(ms) != 2 || ms[1].Status != modellab.MessageDone || len(ms[1].Content) < 19*up.Chunks {
			t.Fatalf("conversation %s stored %+v", c, ms)
		}
	}
	// The goroutines of the streams are gone once they are over, and
	// those of the pool of idle connections to the upstream (two each)
	// once the upstream closes them.
	up.CloseClientConnections()
	limit := before.goroutines + 10
	deadline := time.Now().Add(20 * time.Second)
	for {
		after := sample(t, url, proc.cmd.Process.Pid)
		if after.goroutines <= limit {
			t.Logf("%0.f goroutines after the streams (%0.f before, %0.f at the peak)", after.goroutines, before.goroutines, peak.goroutines)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%0.f goroutines after the streams, %0.f before: streams left goroutines behind", after.goroutines, before.goroutines)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// soakRun is one soak: the first len(convs) streams are messages.
type soakRun struct {
	lab     *lab
	convs   []string
	streams int
	chunks  int
	peakAt  time.Duration
	sample  func() memSample
}

// soak runs the streams at once, samples the server at peakAt, fails the
// test unless every stream arrived whole, and returns the peak sample.
func soak(t *testing.T, r soakRun) memSample {
	var failures atomic.Int64
	var errs sync.Map
	var wg sync.WaitGroup
	for i := 0; i < r.streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i < len(r.convs) {
				err = readMessage(r.lab, r.convs[i], r.chunks)
			} else {
				err = readCompletion(r.lab, r.chunks)
			}
			if err != nil {
				failures.Add(1)
				errs.Store(i, err)
			}
		}()
	}
	time.Sleep(r.peakAt)
	peak := r.sample()
	wg.Wait()
	errs.Range(func(k, v any) bool { t.Errorf("stream %v: %v", k, v); return true })
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d streams failed", n, r.streams)
	}
	return peak
}

type memSample struct{ heap, rss, goroutines float64 }

func sample(t *testing.T, url string, pid int) memSample {
	return memSample{heap: metric(t, url, "go_memstats_heap_inuse_bytes"), rss: rss(t, pid), goroutines: metric(t, url, "go_goroutines")}
}

// readCompletion reads one streamed completion whole: want chunks of
// content, then [DONE].
func readCompletion(l *lab, want int) error {
	res, err := l.post("/v1/chat/completions", map[string]any{"model": "clock", "stream": true, "messages": []map[string]string{{"role": "user", "content": "t"}}})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	n, done := 0, false
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
		case bytes.Equal(line, []byte("data: [DONE]")):
			done = true
		case bytes.Contains(line, []byte(`"error"`)):
			return fmt.Errorf("error event %s", line)
		case bytes.Contains(line, contentKey):
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n != want || !done {
		return fmt.Errorf("%d of %d chunks, [DONE] %v", n, want, done)
	}
	return nil
}

// readMessage sends a message and reads its reply stream whole: want
// deltas, then the done event of a reply stored done.
func readMessage(l *lab, conv string, want int) error {
	res, err := l.post("/api/conversations/"+conv+"/messages", map[string]any{"content": "t"})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	n := 0
	var last struct {
		Done    bool             `json:"done"`
		Message modellab.Message `json:"message"`
	}
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		switch {
		case !ok:
		case strings.HasPrefix(data, `{"delta"`):
			n++
		default:
			if err := json.Unmarshal([]byte(data), &last); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n != want || !last.Done || last.Message.Status != modellab.MessageDone {
		return fmt.Errorf("%d of %d deltas, last %+v", n, want, last)
	}
	return nil
}
