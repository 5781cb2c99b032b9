package gateway

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkNext is the gateway's work on one chunk of a stream, as vLLM
// writes it (usage asked for, so every chunk carries "usage": null):
// framing, the JSON check, the error and usage scans, the watchdog.
func BenchmarkNext(b *testing.B) {
	chunk := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama3.2",` +
		`"choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}],"usage":null}` + "\n\n"
	body := bytes.Repeat([]byte(chunk), 1000)
	token := []byte("token")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for i := 0; i < b.N; {
		w := newWatchdog(cancel, time.Minute, time.Minute)
		r := &Response{body: &watchedBody{rc: io.NopCloser(bytes.NewReader(body)), clock: w, ctx: ctx, parent: ctx, idle: time.Minute}, cancel: cancel}
		for ; i < b.N; i++ {
			data, err := r.Next()
			if err != nil {
				break
			}
			if !bytes.Contains(data, token) {
				b.Fatal(string(data))
			}
		}
		w.stop()
	}
}
