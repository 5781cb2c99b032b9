package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser test drives the pages in headless Chromium, as a person
// would: log in, create and delete a model through the form, watch the
// monitor pick up a status change made through the API without a reload,
// watch a run's chart grow while its points are ingested, find the
// analytics chart, and watch a chat reply stream in. It saves a screenshot
// of each page:
//
//	MODELLAB_SCREENSHOTS=docs/screenshots go test ./web -run TestBrowser
//
// writes the PNGs the README shows (a relative path is taken from the
// module root); without it they go to a temporary directory.
// MODELLAB_BROWSER_TESTS=off skips the test where no Chromium can be
// installed; otherwise a missing Chromium fails it.

func chromiumPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("MODELLAB_BROWSER_TESTS") == "off" {
		t.Skip("MODELLAB_BROWSER_TESTS=off")
	}
	if p := os.Getenv("MODELLAB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: run scripts/deps.sh (or apt-get install chromium), " +
		"set MODELLAB_CHROMIUM to its path, or MODELLAB_BROWSER_TESTS=off to skip the browser test")
	return ""
}

// screenshotDir returns where to write the screenshots.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MODELLAB_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(dir) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func TestBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	shots := screenshotDir(t)
	e := newEnv(t, time.Now)
	d := seedDemo(e, time.Now())

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	do := func(step string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		start := time.Now()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		t.Logf("%s: %v", step, time.Since(start).Round(time.Millisecond))
	}
	shot := func(name string, full bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			a := chromedp.CaptureScreenshot()
			if full {
				a = chromedp.FullScreenshot(100)
			}
			buf, err := a(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		return strings.TrimSpace(get(t, ctx, "read "+sel, chromedp.TextContent(chromedp.CSS(sel))))
	}
	location := func() string {
		t.Helper()
		return get(t, ctx, "location", chromedp.Location())
	}

	// Without a session a page sends the browser to the login form.
	do("open the login page",
		chromedp.Navigate(e.url+"/models"),
		chromedp.WaitVisible(chromedp.ID("token")),
		shot("login", false),
	)
	if loc := location(); loc != e.url+"/login" {
		t.Fatalf("/models without a session ended at %q, want the login page", loc)
	}

	// A wrong token shows the error next to the field; the right one logs in.
	do("wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "mlk_wrong"),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("token-error")),
	)
	do("log in",
		chromedp.SendKeys(chromedp.ID("token"), d.token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(".stats")),
		shot("home", true),
	)
	if loc := location(); loc != e.url+"/" {
		t.Fatalf("after login the browser is at %q, want /", loc)
	}

	// Create a model through the form: first with mistakes, then right.
	do("submit an invalid model",
		chromedp.Navigate(e.url+"/models"),
		chromedp.WaitVisible(chromedp.ID("create-model")),
		chromedp.SendKeys(chromedp.ID("name"), "browser-model"),
		chromedp.SendKeys(chromedp.ID("context_length"), "lots"),
		chromedp.Click(chromedp.CSS("#create-model button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("provider-error")),
	)
	if got := text("#context_length-error"); !strings.Contains(got, "whole number") {
		t.Fatalf("context_length error = %q", got)
	}
	do("screenshot the validation errors", shot("models-validation", true))
	do("create a model",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("context_length").value = ""; undefined`),
		chromedp.SendKeys(chromedp.ID("context_length"), "4096"),
		chromedp.SendKeys(chromedp.ID("provider"), "local"),
		chromedp.SendKeys(chromedp.ID("base_model"), "llama-3.1-8b"),
		chromedp.Click(chromedp.CSS("#create-model button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("flash-created")),
		shot("models", true),
	)
	id := get(t, ctx, "find the new row", chromedp.Evaluate[string](`(() => {
		const row = [...document.querySelectorAll("#models-table tbody tr")]
			.find(r => r.querySelector(".model-name").textContent === "browser-model");
		return row ? row.dataset.id : "";
	})()`))
	if id == "" {
		t.Fatalf("browser-model is not in the list after creating it")
	}

	// Delete it with its button.
	do("delete the model",
		chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] .delete-form button`)),
		chromedp.WaitVisible(chromedp.ID("flash-deleted")),
	)
	if get(t, ctx, "look for the row", chromedp.Evaluate[bool](`!!document.querySelector('tr[data-id="`+id+`"]')`)) {
		t.Fatalf("the deleted model is still listed")
	}

	// The monitor picks up a change made through the API without a reload:
	// a marker set on window survives only if the page was not reloaded.
	target := d.servers[2] // h100-train-1, starting
	row := "#server-" + target.ID
	do("open the monitor",
		chromedp.Navigate(e.url+"/monitor"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 42; undefined`),
	)
	if got := text(row + " .status-cell"); got != "starting" {
		t.Fatalf("monitor shows %q for %s before the change, want starting", got, target.Name)
	}
	e.api("PATCH", "/api/servers/"+target.ID, d.token, map[string]any{"status": "running"}, 200)
	get(t, ctx, "wait for the monitor to refresh", chromedp.Poll[bool](
		`(() => { const r = document.querySelector("`+row+`"); return !!r && r.dataset.status === "running"; })()`,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))
	if marker := get(t, ctx, "read the marker", chromedp.Evaluate[int](`window.__sameDocument || 0`)); marker != 42 {
		t.Fatalf("the monitor reloaded the page to show the change")
	}
	if got := text(`.stat-value[data-k="running"]`); got != "3" {
		t.Errorf("running count after the change = %q, want 3", got)
	}
	do("screenshot the monitor", shot("monitor", true))

	// A running run's chart grows while points arrive through the API,
	// without a reload; once the run ends, the page says so.
	run := d.runs[0]
	loss := `document.querySelector('figure[data-key="loss"]')`
	do("open the run",
		chromedp.Click(chromedp.CSS(`#run-`+run.ID+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`figure[data-key="loss"] svg path.line`)),
		chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 43; undefined`),
	)
	if got := get(t, ctx, "read the last step", chromedp.Evaluate[string](loss+`.dataset.lastStep`)); got != "2990" {
		t.Fatalf("the loss chart ends at step %q, want 2990", got)
	}
	before := get(t, ctx, "read the path", chromedp.Evaluate[string](loss+`.querySelector("path.line").getAttribute("d")`))
	for batch := 0; batch < 3; batch++ {
		var pts []map[string]any
		for s := 0; s < 20; s++ {
			step := 3000 + batch*200 + s*10
			pts = append(pts, map[string]any{"key": "loss", "step": step, "value": 0.3 - float64(step)/1e5})
		}
		e.api("POST", "/api/runs/"+run.ID+"/metrics", d.token, map[string]any{"points": pts}, 202)
		want := fmt.Sprint(3000 + batch*200 + 190)
		get(t, ctx, "wait for the chart to grow to step "+want, chromedp.Poll[bool](
			loss+`.dataset.lastStep === "`+want+`"`,
			chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))
	}
	if after := get(t, ctx, "read the path", chromedp.Evaluate[string](loss+`.querySelector("path.line").getAttribute("d")`)); after == before {
		t.Errorf("the loss line did not change")
	}
	if got := text(`[data-k="last-step"]`); got != "3,590" {
		t.Errorf("the last step shown is %q, want 3,590", got)
	}
	if marker := get(t, ctx, "read the marker", chromedp.Evaluate[int](`window.__sameDocument || 0`)); marker != 43 {
		t.Fatalf("the run page reloaded to show new points")
	}
	do("screenshot the run", shot("run", true))
	e.api("PATCH", "/api/runs/"+run.ID, d.token, map[string]any{"status": "finished"}, 200)
	get(t, ctx, "wait for the page to see the end", chromedp.Poll[bool](
		`!!document.querySelector("#run-live[data-final]") && document.getElementById("live-text").textContent === "Run finished"`,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))

	// Analytics draws the series as SVG, and the range picker works.
	do("open analytics",
		chromedp.Navigate(e.url+"/analytics"),
		chromedp.WaitVisible(chromedp.CSS("#requests-chart svg")),
		shot("analytics", true),
	)
	if bars := get(t, ctx, "count bars", chromedp.Evaluate[int](`document.querySelectorAll("#requests-chart svg rect.ok").length`)); bars < 5 {
		t.Fatalf("the requests chart has %d bars, want one per day with traffic", bars)
	}
	do("pick hourly buckets",
		chromedp.SetValue(chromedp.ID("interval"), "hour"),
		chromedp.Submit(chromedp.ID("range-form")),
		chromedp.WaitVisible(chromedp.CSS("#latency-chart svg path.line")),
	)
	if loc := location(); !strings.Contains(loc, "interval=hour") {
		t.Errorf("the range form went to %q, want interval=hour", loc)
	}

	// Lab Academy: read a lesson, mark it complete with its form, and find
	// the progress on the lesson and on the course index.
	do("open a lesson",
		chromedp.Navigate(e.url+"/academy/first-model"),
		chromedp.WaitVisible(chromedp.ID("complete-form")),
	)
	if got := text("#course-done"); got != "0 of 4 done" {
		t.Errorf("the lesson's progress before = %q, want 0 of 4 done", got)
	}
	do("mark the lesson complete",
		chromedp.Click(chromedp.CSS("#complete-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("lesson-done")),
		shot("lesson", true),
	)
	if loc := location(); loc != e.url+"/academy/first-model" {
		t.Errorf("after marking complete the browser is at %q, want back on the lesson", loc)
	}
	if got := text("#course-done"); got != "1 of 4 done" {
		t.Errorf("the lesson's progress after = %q, want 1 of 4 done", got)
	}
	if n := get(t, ctx, "count highlighted tokens", chromedp.Evaluate[int](`document.querySelectorAll(".prose pre.chroma span.s1, .prose pre.chroma span.s2").length`)); n == 0 {
		t.Errorf("the lesson's code blocks are not highlighted")
	}
	do("open the academy",
		chromedp.Navigate(e.url+"/academy"),
		chromedp.WaitVisible(chromedp.ID("course-getting-started")),
		shot("academy", true),
	)
	if got := text("#course-getting-started [data-done]"); got != "1 of 4 done" {
		t.Errorf("the course index shows %q for getting started, want 1 of 4 done", got)
	}
	testBrowserChat(t, browserChat{ctx: ctx, e: e, token: d.token, do: do, shot: shot})

	do("open the docs",
		chromedp.Navigate(e.url+"/docs"),
		chromedp.WaitVisible(chromedp.ID("tag-models")),
		shot("docs", false),
	)

	// The pages fit a phone: a narrow viewport without horizontal scrolling.
	do("open the overview on a phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)),
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(".stats")),
		shot("home-mobile", false),
	)
	if overflow := get(t, ctx, "measure the page width", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); overflow {
		t.Errorf("the overview scrolls sideways on a 390 px wide screen")
	}
	do("back to a desktop viewport", chromedp.EmulateViewport(1280, 860))

	// Logging out ends the session: pages send the browser to /login again.
	do("log out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(e.url+"/monitor"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
}

// get runs one action that returns a value, failing the test on error.
func get[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return v
}
