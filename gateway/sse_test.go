package gateway

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func readAllEvents(t *testing.T, r io.Reader) ([]sseEvent, error) {
	t.Helper()
	sr := newSSEReader(r)
	var out []sseEvent
	for {
		ev, err := sr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, sseEvent{Type: ev.Type, Data: append([]byte(nil), ev.Data...)})
	}
}

func TestSSEReader(t *testing.T) {
	ev := func(typ, data string) sseEvent { return sseEvent{Type: typ, Data: []byte(data)} }
	tests := []struct {
		name string
		in   string
		want []sseEvent
	}{
		{"plain", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []sseEvent{ev("", `{"a":1}`), ev("", "[DONE]")}},
		{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", []sseEvent{ev("", "x"), ev("", "y")}},
		{"no space after the colon", "data:x\n\n", []sseEvent{ev("", "x")}},
		{"only the first space is cut", "data:  x\n\n", []sseEvent{ev("", " x")}},
		{"comments", ": ping\n\n: hello\ndata: x\n\n:keep-alive\n\n", []sseEvent{ev("", "x")}},
		{"empty frames", "data:\n\ndata: \r\n\r\n\n\n\ndata: x\n\n", []sseEvent{ev("", "x")}},
		{"lone event line", "event: ping\n\ndata: x\n\n", []sseEvent{ev("", "x")}},
		{"multi-line data", "data: a\ndata: b\ndata:\ndata: c\n\n", []sseEvent{ev("", "a\nb\n\nc")}},
		{"event error", "data: x\n\nevent: error\ndata: {\"message\":\"boom\"}\n\n", []sseEvent{ev("", "x"), ev("error", `{"message":"boom"}`)}},
		{"llama.cpp error line", "data: x\n\nerror: {\"code\":500,\"message\":\"decode failed\"}\n\n", []sseEvent{ev("", "x"), ev("error", `{"code":500,"message":"decode failed"}`)}},
		{"other fields ignored", "id: 7\nretry: 100\nfoo\ndata: x\n\n", []sseEvent{ev("", "x")}},
		{"last event without blank line", "data: x\n\ndata: y", []sseEvent{ev("", "x"), ev("", "y")}},
		{"last event ending in CR", "data: y\r", []sseEvent{ev("", "y")}},
		{"nothing", "", nil},
		{"only noise", ": ping\n\ndata:\n\n", nil},
		{"long line", "data: " + strings.Repeat("z", 100<<10) + "\n\n", []sseEvent{ev("", strings.Repeat("z", 100<<10))}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"halves":   func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, err := readAllEvents(t, mk(tt.in))
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("events = %q\nwant %q", got, tt.want)
				}
			})
		}
	}
}

func TestSSEReaderErrors(t *testing.T) {
	// A read error is passed through, after the events before it.
	boom := errors.New("boom")
	got, err := readAllEvents(t, io.MultiReader(strings.NewReader("data: x\n\n"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || len(got) != 1 {
		t.Errorf("events %q, err %v; want one event and boom", got, err)
	}
	// An event over the bound is refused instead of growing without end.
	huge := "data: " + strings.Repeat("a", maxEventBytes+1) + "\n\n"
	if _, err := readAllEvents(t, strings.NewReader(huge)); !errors.Is(err, errEventTooLarge) {
		t.Errorf("huge event: err = %v, want errEventTooLarge", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("b", 1<<20)+"\n", 5) + "\n"
	if _, err := readAllEvents(t, strings.NewReader(many)); !errors.Is(err, errEventTooLarge) {
		t.Errorf("many data lines: err = %v, want errEventTooLarge", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("data: x\r\n\r\n: ping\n\nerror: y\n\nevent: error\ndata: z")
	f.Fuzz(func(t *testing.T, in string) {
		// Whatever the bytes, the reader ends (no panic, no endless loop)
		// and agrees with itself across read sizes.
		a, errA := readAllEvents(t, strings.NewReader(in))
		b, errB := readAllEvents(t, iotest.OneByteReader(strings.NewReader(in)))
		if (errA == nil) != (errB == nil) || !reflect.DeepEqual(a, b) {
			t.Fatalf("whole: %q %v\none byte: %q %v", a, errA, b, errB)
		}
		for _, ev := range a {
			if len(ev.Data) == 0 {
				t.Fatalf("an event without data was dispatched: %+v", ev)
			}
		}
	})
}

func TestHasValue(t *testing.T) {
	key := []byte(`"finish_reason"`)
	for in, want := range map[string]bool{
		`{"finish_reason":"stop"}`:                         true,
		`{"finish_reason" : "length"}`:                     true,
		`{"finish_reason":null}`:                           false,
		`{"content":"\"finish_reason\""}`:                  false,
		`{"a":"finish_reason","b":{"finish_reason": "x"}}`: true,
	} {
		if got := hasValue([]byte(in), key, '"'); got != want {
			t.Errorf("hasValue(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestUsageOf(t *testing.T) {
	for _, tt := range []struct {
		in         string
		ok, only   bool
		completion int64
	}{
		{`{"choices":[{"delta":{"content":"x"}}],"usage":null}`, false, false, 0},
		{`{"choices":[{"delta":{"content":"\"usage\": {"}}]}`, false, false, 0},
		{`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}`, true, true, 5},
		{`{"choices":[{"delta":{}}], "usage" : { "completion_tokens": 2 }}`, true, false, 2},
		{`{"usage":null,"x":{"usage":{"completion_tokens":9}}}`, false, false, 0},
	} {
		u, ok, only := usageOf([]byte(tt.in))
		if ok != tt.ok || only != tt.only || u.CompletionTokens != tt.completion {
			t.Errorf("usageOf(%s) = %+v %v %v; want %v %v %d", tt.in, u, ok, only, tt.ok, tt.only, tt.completion)
		}
	}
}
