package server_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/modellab/modellab/academy"
	"github.com/modellab/modellab/service"
)

// The public academy reads are the same bytes for every caller (no token,
// a user's, a wrong one), say public, vary by encoding only, and are
// cached: MISS, then HIT, then 304 for the ETag.
func TestAcademyPublicReads(t *testing.T) {
	e := newEnv(t, envOpts{})
	alice, _ := e.user("alice")
	cat := academy.MustEmbedded()
	first := cat.Lessons()[0]
	for _, path := range []string{"/api/academy/courses", "/api/academy/lessons/" + first.Slug} {
		anon := e.must(200, "GET", path, "", nil)
		if got := anon.header.Get("X-Cache"); got != "MISS" {
			t.Errorf("%s: first X-Cache %q, want MISS", path, got)
		}
		if cc := anon.header.Get("Cache-Control"); !strings.HasPrefix(cc, "public") {
			t.Errorf("%s: Cache-Control %q, want public", path, cc)
		}
		if v := anon.header.Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("%s: Vary %q, want Accept-Encoding only", path, v)
		}
		for _, tok := range []string{alice, "mlk_not-a-token"} {
			r := e.must(200, "GET", path, tok, nil)
			if string(r.body) != string(anon.body) || r.header.Get("ETag") != anon.header.Get("ETag") || r.header.Get("X-Cache") != "HIT" {
				t.Errorf("%s with a token: X-Cache %s, ETag %s vs %s; bodies equal %v", path,
					r.header.Get("X-Cache"), r.header.Get("ETag"), anon.header.Get("ETag"), string(r.body) == string(anon.body))
			}
		}
		e.must(304, "GET", path, "", nil, "If-None-Match", anon.header.Get("ETag"))
	}
	if got := e.metric("modellab_cache_loads_total", map[string]string{"endpoint": "academy"}); got != 2 {
		t.Errorf("academy loads = %v, want 2 (one per key)", got)
	}
}

func TestAcademyBodies(t *testing.T) {
	e := newEnv(t, envOpts{})
	cat := academy.MustEmbedded()
	var courses service.AcademyCourses
	e.must(200, "GET", "/api/academy/courses", "", nil).json(t, &courses)
	if len(courses.Courses) != len(cat.Courses()) {
		t.Fatalf("%d courses, want %d", len(courses.Courses), len(cat.Courses()))
	}
	for i, c := range courses.Courses {
		want := cat.Courses()[i]
		if c.Slug != want.Slug || c.Title != want.Title || len(c.Lessons) != len(want.Lessons) {
			t.Errorf("course %d = %s %q (%d lessons), want %s %q (%d)", i, c.Slug, c.Title, len(c.Lessons), want.Slug, want.Title, len(want.Lessons))
		}
		for j, l := range c.Lessons {
			if l.Slug != want.Lessons[j].Slug || l.Minutes != want.Lessons[j].Minutes || l.Minutes < 1 {
				t.Errorf("lesson %s: %+v", want.Lessons[j].Slug, l)
			}
		}
	}
	all := cat.Lessons()
	var first, last service.AcademyLesson
	e.must(200, "GET", "/api/academy/lessons/"+all[0].Slug, "", nil).json(t, &first)
	if first.Slug != all[0].Slug || first.Course != all[0].Course.Slug || first.HTML != all[0].HTML || first.Next == nil || *first.Next != all[1].Slug {
		t.Errorf("first lesson = %+v", first)
	}
	r := e.must(200, "GET", "/api/academy/lessons/"+all[len(all)-1].Slug, "", nil)
	r.json(t, &last)
	if last.Next != nil || !strings.Contains(string(r.body), `"next":null`) {
		t.Errorf("last lesson's next = %v, want null", last.Next)
	}
	for _, slug := range []string{"nope", "..%2Fcourses", "WELCOME"} {
		if code := e.must(404, "GET", "/api/academy/lessons/"+slug, "", nil).errorCode(t); code != "not_found" {
			t.Errorf("lesson %s: code %s, want not_found", slug, code)
		}
	}
}

// Progress is private and the caller's own; completing is idempotent,
// drops only the caller's progress entry, and never the shared lesson.
func TestAcademyProgress(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			testAcademyProgress(t, newEnv(t, envOpts{engine: engine}))
		})
	}
}

func testAcademyProgress(t *testing.T, e *env) {
	alice, _ := e.user("alice")
	bob, _ := e.user("bob")
	cat := academy.MustEmbedded()
	course := cat.Courses()[0]
	a, b := course.Lessons[0].Slug, course.Lessons[1].Slug

	progress := func(tok, wantCache string) service.AcademyProgress {
		t.Helper()
		r := e.must(200, "GET", "/api/academy/progress", tok, nil)
		if got := r.header.Get("X-Cache"); got != wantCache {
			t.Errorf("progress X-Cache %q, want %q", got, wantCache)
		}
		if cc := r.header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
			t.Errorf("progress Cache-Control %q, want private", cc)
		}
		var p service.AcademyProgress
		r.json(t, &p)
		return p
	}
	empty := progress(alice, "MISS")
	if len(empty.Completed) != 0 || len(empty.Courses) != len(cat.Courses()) || empty.Courses[0] != (service.CourseProgress{Slug: course.Slug, Done: 0, Total: len(course.Lessons)}) {
		t.Fatalf("fresh progress = %+v", empty)
	}
	progress(alice, "HIT")
	lessonPath := "/api/academy/lessons/" + a
	e.must(200, "GET", lessonPath, "", nil)

	// b first, then a, then a again: the answer lists them in catalog order.
	var got service.AcademyProgress
	e.must(200, "POST", "/api/academy/lessons/"+b+"/complete", alice, nil)
	for range 2 {
		e.must(200, "POST", "/api/academy/lessons/"+a+"/complete", alice, nil).json(t, &got)
	}
	if want := []string{a, b}; !reflect.DeepEqual(got.Completed, want) || got.Courses[0].Done != 2 {
		t.Fatalf("after completing = %+v, want %v and 2 done", got, want)
	}
	after := progress(alice, "MISS")
	if !reflect.DeepEqual(after, got) {
		t.Errorf("GET progress = %+v, the POST answered %+v", after, got)
	}
	if r := e.must(200, "GET", lessonPath, "", nil); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("the lesson after a completion: X-Cache %s, want HIT (only progress is dropped)", r.header.Get("X-Cache"))
	}
	if p := progress(bob, "MISS"); len(p.Completed) != 0 {
		t.Errorf("bob sees %v completed", p.Completed)
	}
	raw, _ := json.Marshal(e.must(200, "GET", "/api/academy/progress", bob, nil).header)
	if strings.Contains(string(raw), "public") {
		t.Errorf("bob's progress headers say public: %s", raw)
	}

	e.must(401, "GET", "/api/academy/progress", "", nil)
	e.must(401, "POST", "/api/academy/lessons/"+a+"/complete", "", nil)
	if code := e.must(404, "POST", "/api/academy/lessons/nope/complete", alice, nil).errorCode(t); code != "not_found" {
		t.Errorf("completing an unknown lesson: %s, want not_found", code)
	}
	if r := e.do("GET", "/api/academy/lessons/"+a+"/complete", alice, nil); r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("GET …/complete: %d Allow %q, want 405 Allow POST", r.status, r.header.Get("Allow"))
	}
}
