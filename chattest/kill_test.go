package chattest_test

import (
	"bufio"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/fakeopenai"
)

// killBound is the loose bound the tests assert on the time between a
// process being killed and the gateway acting on it; the figures measured
// on a quiet machine are in docs/RELIABILITY.md.
const killBound = 3 * time.Second

// stream is one stream under watch: its events as they arrive.
type stream struct {
	events chan string // data of each event
	first  chan struct{}
	err    error
}

// watch posts body to path and reads its events in the background.
func watch(t *testing.T, l *lab, path string, body any) *stream {
	t.Helper()
	s := &stream{events: make(chan string, 1024), first: make(chan struct{})}
	res, err := l.post(path, body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("POST %s: %v %v", path, res, err)
	}
	go func() {
		defer res.Body.Close()
		defer close(s.events)
		var once sync.Once
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				s.events <- data
				once.Do(func() { close(s.first) })
			}
		}
		s.err = sc.Err()
	}()
	return s
}

// rest collects the remaining events, with when the last one came.
func (s *stream) rest(t *testing.T, d time.Duration) ([]string, time.Time) {
	t.Helper()
	var out []string
	var at time.Time
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return out, at
			}
			out, at = append(out, ev), time.Now()
		case <-timeout:
			t.Fatalf("the stream did not end within %v (events so far %q)", d, out)
		}
	}
}

func deltas(events []string) string {
	var b strings.Builder
	for _, ev := range events {
		var d struct {
			Delta string `json:"delta"`
		}
		if json.Unmarshal([]byte(ev), &d) == nil {
			b.WriteString(d.Delta)
		}
	}
	return b.String()
}

// TestUpstreamKilledMidStream: SIGKILL the inference server while replies
// stream from it. Its streams end at once with an error event, and each
// stored reply ends "error" with what had arrived; streams on another
// inference server, and the gateway itself, go on unharmed.
func TestUpstreamKilledMidStream(t *testing.T) {
	_, url := serve(t)
	l := newLab(t, url)
	victim := role(t, "upstream")
	victimURL := victim.line(upstreamRE, 60*time.Second)[1]
	other := fakeopenai.New(t)
	other.Delay = 100 * time.Millisecond
	doomed := l.model("doomed", fakeopenai.Slow, victimURL)
	safe := l.model("safe", fakeopenai.Slow, other.BaseURL())
	prompt := words(30) // 32 chunks: 6.4 s at the victim's pace

	var doomedMsgs, safeMsgs []*stream
	var convs []string
	for i := 0; i < 3; i++ {
		c := l.conversation(doomed)
		convs = append(convs, c)
		doomedMsgs = append(doomedMsgs, watch(t, l, "/api/conversations/"+c+"/messages", map[string]any{"content": prompt}))
		safeMsgs = append(safeMsgs, watch(t, l, "/api/conversations/"+l.conversation(safe)+"/messages", map[string]any{"content": "w0 w1 w2 w3 w4 w5"}))
	}
	doomedV1 := watch(t, l, "/v1/chat/completions", map[string]any{"model": "doomed", "stream": true, "messages": []map[string]string{{"role": "user", "content": prompt}}})
	for _, s := range append(doomedMsgs, doomedV1) {
		<-s.first
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	victim.kill()

	var worst time.Duration
	for i, s := range doomedMsgs {
		evs, at := s.rest(t, 30*time.Second)
		worst = max(worst, at.Sub(killed))
		n := len(evs)
		if n < 2 || !strings.Contains(evs[n-2], `"code":"bad_gateway"`) || !strings.Contains(evs[n-1], `"status":"error"`) {
			t.Fatalf("message stream %d after the kill: %q", i, evs)
		}
		var done struct {
			Message modellab.Message `json:"message"`
		}
		_ = json.Unmarshal([]byte(evs[n-1]), &done)
		if done.Message.Content == "" || !strings.HasPrefix("You said: "+prompt, done.Message.Content) {
			t.Errorf("reply %d ended as %q, want the part that arrived", i, done.Message.Content)
		}
		if ms := l.messages(convs[i]); ms[1].Status != modellab.MessageError || ms[1].Content != done.Message.Content {
			t.Errorf("reply %d stored as %+v, want error with %q", i, ms[1], done.Message.Content)
		}
	}
	evs, at := doomedV1.rest(t, 30*time.Second)
	worst = max(worst, at.Sub(killed))
	if last := evs[len(evs)-1]; !strings.Contains(last, `"error":{"code":"bad_gateway"`) {
		t.Errorf("the completion's last event after the kill: %q", last)
	}
	t.Logf("load average %s; the last stream of the killed server ended %v after the kill", loadavg(), worst.Round(time.Millisecond))
	if worst > killBound {
		t.Errorf("the gateway took %v to end the streams of a killed server", worst)
	}
	for i, s := range safeMsgs {
		evs, _ := s.rest(t, 30*time.Second)
		if got := deltas(evs); got != "You said: w0 w1 w2 w3 w4 w5" || !strings.Contains(evs[len(evs)-1], `"status":"done"`) {
			t.Errorf("a stream on the other server (%d) was harmed: %q", i, evs)
		}
	}
	l.api.Must(200, "GET", "/healthz", "", nil)
	l.api.Must(200, "POST", "/v1/chat/completions", l.token, map[string]any{"model": "safe", "messages": []map[string]string{{"role": "user", "content": "still there?"}}})
	// The dead server now refuses connections: a new completion is a 502
	// at once, not a hang.
	r := l.api.Do("POST", "/v1/chat/completions", l.token, map[string]any{"model": "doomed", "messages": []map[string]string{{"role": "user", "content": "x"}}})
	if r.Status != 502 {
		t.Errorf("a completion on the killed server: %d %s", r.Status, r.Body)
	}
}

var eventRE = regexp.MustCompile(`^data: (.*)$`)

// TestClientKilledMidStream: SIGKILL the client of a streaming reply. The
// upstream request is canceled at once (the inference server stops
// generating), the reply is stored "canceled" with what had arrived, and
// the other streams go on.
func TestClientKilledMidStream(t *testing.T) {
	_, url := serve(t)
	l := newLab(t, url)
	up := fakeopenai.New(t)
	up.Delay = 200 * time.Millisecond
	m := l.model("slow", fakeopenai.Slow, up.BaseURL())
	conv := l.conversation(m)
	bystander := watch(t, l, "/api/conversations/"+l.conversation(m)+"/messages", map[string]any{"content": "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"})
	client := role(t, "client", "CHATTEST_URL="+url+"/api/conversations/"+conv+"/messages", "CHATTEST_TOKEN="+l.token)
	client.line(eventRE, 60*time.Second)
	client.line(eventRE, 10*time.Second) // two pieces in
	killed := time.Now()
	client.kill()
	at, ok := up.WaitCanceled(30 * time.Second)
	if !ok {
		t.Fatal("the upstream request was not canceled after its client was killed")
	}
	d := at.Sub(killed)
	t.Logf("load average %s; the upstream request was canceled %v after the client was killed", loadavg(), d.Round(time.Millisecond))
	if d > killBound {
		t.Errorf("the upstream request was canceled %v after the client was killed", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	var ms []modellab.Message
	for {
		ms = l.messages(conv)
		if ms[1].Status != modellab.MessageStreaming || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ms[1].Status != modellab.MessageCanceled || !strings.HasPrefix(ms[1].Content, "You said:") {
		t.Errorf("the reply of the killed client is stored as %+v, want canceled with the part sent", ms[1])
	}
	evs, _ := bystander.rest(t, 30*time.Second)
	if got := deltas(evs); got != "You said: w0 w1 w2 w3 w4 w5 w6 w7 w8 w9" {
		t.Errorf("the other stream was harmed: %q", got)
	}
}
