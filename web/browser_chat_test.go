package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/modellab/modellab/internal/fakeopenai"
)

// browserChat is what the chat part of the browser test needs from it.
type browserChat struct {
	ctx   context.Context
	e     *env
	token string
	do    func(step string, steps ...chromedp.Action[chromedp.Void])
	shot  func(name string, full bool) chromedp.Action[chromedp.Void]
}

// testBrowserChat starts a conversation and sends a message in the
// browser: the reply streams into the page (its first piece shows while
// the inference server is still writing), ends done, and is there after a
// reload.
func testBrowserChat(t *testing.T, b browserChat) {
	t.Helper()
	up := fakeopenai.New(t)
	up.Delay = 300 * time.Millisecond
	m := b.e.model(b.token, map[string]any{"name": "browser-chat", "provider": "local", "base_model": fakeopenai.Slow})
	b.e.server(b.token, map[string]any{"name": "chat-node", "model_id": m.ID, "status": "running", "endpoint": up.BaseURL()})
	const say = "streaming works in the browser"
	b.do("start a conversation",
		chromedp.Navigate(b.e.url+"/chat"),
		chromedp.WaitVisible(chromedp.ID("new-chat")),
		chromedp.SetValue(chromedp.ID("model_id"), m.ID),
		chromedp.Click(chromedp.CSS("#new-chat button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("chat-form")),
		chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 7; undefined`),
		chromedp.SendKeys(chromedp.ID("content"), say),
		chromedp.Click(chromedp.CSS("#chat-form button[type=submit]")),
	)
	reply := `document.querySelector(".msg-assistant")`
	get(t, b.ctx, "wait for the first piece of the reply", chromedp.Poll[bool](
		`(() => { const r = `+reply+`; return !!r && r.querySelector(".msg-body").textContent.length > 0; })()`,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(20*time.Millisecond)))
	if n := up.Finished(); n != 0 {
		t.Fatalf("the first piece of the reply showed only after the inference server had finished")
	}
	partial := get(t, b.ctx, "read the partial reply", chromedp.Evaluate[string](reply+`.querySelector(".msg-body").textContent`))
	get(t, b.ctx, "wait for the reply to end", chromedp.Poll[bool](
		`(() => { const r = `+reply+`; return !!r && r.dataset.status === "done"; })()`,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	full := get(t, b.ctx, "read the reply", chromedp.Evaluate[string](reply+`.querySelector(".msg-body").textContent`))
	if want := "You said: " + say; full != want || !strings.HasPrefix(want, partial) || partial == want {
		t.Fatalf("reply %q (first seen as %q), want %q arriving in pieces", full, partial, want)
	}
	if marker := get(t, b.ctx, "read the marker", chromedp.Evaluate[int](`window.__sameDocument || 0`)); marker != 7 {
		t.Fatalf("the page reloaded to show the reply")
	}
	b.do("screenshot the chat", b.shot("chat", true))
	b.do("reload the conversation",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`.msg-assistant[data-status="done"]`)),
	)
	if got := get(t, b.ctx, "read the stored reply", chromedp.Evaluate[string](reply+`.querySelector(".msg-body").textContent`)); got != full {
		t.Errorf("after a reload the reply reads %q, want %q", got, full)
	}
}
