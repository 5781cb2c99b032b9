package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab/academy"
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/web"
)

// A lesson page is composed of a shared part and the reader's own: 50
// users reading one lesson at once cost one render of the lesson fragment
// and one cache load of the lesson, while each of them sees their own
// progress (and nobody else's).
func TestLessonSharedFragment(t *testing.T) {
	e := newEnv(t, time.Now)
	course := academy.MustEmbedded().Courses()[0]
	lesson := course.Lessons[0]
	total := len(course.Lessons)
	const n = 50
	type reader struct {
		name, token string
		done        int // lessons of the course completed, from the first
	}
	readers := make([]reader, n)
	for i := range readers {
		r := &readers[i]
		r.name, r.done = fmt.Sprintf("reader-%02d", i), i%(total+1)
		r.token, _ = e.user(r.name)
		for _, l := range course.Lessons[:r.done] {
			e.api("POST", "/api/academy/lessons/"+l.Slug+"/complete", r.token, nil, 200)
		}
	}
	rendersBefore := web.FragmentRenders(e.pages)
	loadsBefore := e.svc.Cache().Stats().Groups[service.GroupAcademy].Loads

	pages := make([]resp, n)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url+"/academy/"+lesson.Slug, nil)
			req.Header.Set("Authorization", "Bearer "+readers[i].token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", readers[i].name, err)
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Errorf("%s: %v", readers[i].name, err)
			}
			pages[i] = resp{status: res.StatusCode, header: res.Header, body: string(b)}
		}()
	}
	wg.Wait()

	if got := web.FragmentRenders(e.pages) - rendersBefore; got != 1 {
		t.Errorf("%d readers caused %d renders of the lesson fragment, want 1", n, got)
	}
	// One load of the lesson, one of the course list, one progress per reader.
	if got := e.svc.Cache().Stats().Groups[service.GroupAcademy].Loads - loadsBefore; got != 2+n {
		t.Errorf("academy cache loads = %d, want %d (lesson 1, courses 1, progress %d)", got, 2+n, n)
	}
	for i, r := range readers {
		p := pages[i]
		if p.status != 200 {
			t.Fatalf("%s: status %d", r.name, p.status)
		}
		if want := fmt.Sprintf(`<span class="small muted" id="course-done">%d of %d done</span>`, r.done, total); !strings.Contains(p.body, want) {
			t.Errorf("%s (%d done): the page lacks %s", r.name, r.done, want)
		}
		if done := strings.Contains(p.body, `id="lesson-done"`); done != (r.done >= 1) {
			t.Errorf("%s: shows the lesson done = %v, want %v", r.name, done, r.done >= 1)
		}
		if !strings.Contains(p.body, `title="Signed in as `+r.name+`"`) {
			t.Errorf("%s: the page is not signed in as its reader", r.name)
		}
		for j := range readers {
			if j != i && strings.Contains(p.body, readers[j].name+`"`) {
				t.Fatalf("%s's page names %s", r.name, readers[j].name)
			}
		}
		if !strings.Contains(p.body, `data-slug="`+lesson.Slug+`"`) {
			t.Errorf("%s: the lesson is not on the page", r.name)
		}
	}
	// Anonymous readers share the fragment too.
	if r := e.get(e.client(), "/academy/"+lesson.Slug); r.status != 200 || web.FragmentRenders(e.pages)-rendersBefore != 1 {
		t.Errorf("anonymous read: status %d, renders %d", r.status, web.FragmentRenders(e.pages)-rendersBefore)
	}
}

// The pages are public, show progress only to a logged-in reader, and the
// mark-complete form is a CSRF-protected POST that goes back to the lesson.
func TestAcademyPages(t *testing.T) {
	e := newEnv(t, time.Now)
	cat := academy.MustEmbedded()
	first, second := cat.Lessons()[0], cat.Lessons()[1]
	tok, _ := e.user("alice")

	anon := e.client()
	idx := e.get(anon, "/academy")
	if idx.status != 200 || strings.Contains(idx.body, "<progress") || !strings.Contains(idx.body, `href="/login"`) {
		t.Fatalf("anonymous /academy: %d, progress bars %v", idx.status, strings.Contains(idx.body, "<progress"))
	}
	for _, c := range cat.Courses() {
		if !strings.Contains(idx.body, `id="course-`+c.Slug+`"`) {
			t.Errorf("the index lacks course %s", c.Slug)
		}
	}
	lp := e.get(anon, "/academy/"+first.Slug)
	if lp.status != 200 || strings.Contains(lp.body, "complete-form") || lp.header.Get("X-Cache") == "" {
		t.Fatalf("anonymous lesson: %d, X-Cache %q, has the form %v", lp.status, lp.header.Get("X-Cache"), strings.Contains(lp.body, "complete-form"))
	}
	if !strings.Contains(lp.body, `href="/academy/`+second.Slug+`" rel="next">Next: `+second.Title) {
		t.Errorf("the lesson page does not link to the next lesson %s", second.Slug)
	}
	if r := e.get(anon, "/academy/no-such-lesson"); r.status != 404 {
		t.Errorf("unknown lesson: %d, want 404", r.status)
	}

	c := e.client()
	csrf := e.login(c, tok)
	page := e.get(c, "/academy/"+first.Slug)
	if !strings.Contains(page.body, `id="complete-form"`) || strings.Contains(page.body, `id="lesson-done"`) {
		t.Fatalf("logged-in lesson page lacks the form or shows it done")
	}
	if r := e.post(c, "/academy/"+first.Slug+"/complete", url.Values{"csrf": {"forged"}}); r.status != 403 {
		t.Errorf("a forged form: %d, want 403", r.status)
	}
	if r := e.post(e.client(), "/academy/"+first.Slug+"/complete", url.Values{"csrf": {csrf}}); r.status != 303 || r.header.Get("Location") != "/login" {
		t.Errorf("no session: %d to %q, want 303 to /login", r.status, r.header.Get("Location"))
	}
	if r := e.post(c, "/academy/no-such-lesson/complete", url.Values{"csrf": {csrf}}); r.status != 404 {
		t.Errorf("completing an unknown lesson: %d, want 404", r.status)
	}
	for range 2 { // idempotent
		r := e.post(c, "/academy/"+first.Slug+"/complete", url.Values{"csrf": {csrf}})
		if r.status != 303 || r.header.Get("Location") != "/academy/"+first.Slug {
			t.Fatalf("mark complete: %d to %q, want 303 back to the lesson", r.status, r.header.Get("Location"))
		}
	}
	page = e.get(c, "/academy/"+first.Slug)
	want := fmt.Sprintf("1 of %d done", len(first.Course.Lessons))
	if !strings.Contains(page.body, `id="lesson-done"`) || !strings.Contains(page.body, want) {
		t.Errorf("after completing, the lesson page lacks the done state or %q", want)
	}
	idx = e.get(c, "/academy")
	if !strings.Contains(idx.body, `data-done="1"`) || !strings.Contains(idx.body, ">Continue<") {
		t.Errorf("the index does not show the progress")
	}
	// Through the API the same progress shows, and the page never leaks it.
	if body := string(e.api("GET", "/api/academy/progress", tok, nil, 200)); !strings.Contains(body, `"completed":["`+first.Slug+`"]`) {
		t.Errorf("API progress = %s", body)
	}
	if r := e.get(anon, "/academy"); strings.Contains(r.body, `data-done="1"`) {
		t.Errorf("an anonymous reader sees alice's progress")
	}
}
