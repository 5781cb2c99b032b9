package web

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/service"
)

// Lab Academy's pages are public and composed of two parts, as an edge
// cache composes a page from includes: the lesson itself, rendered once per
// version of its public cache entry and shared by every reader, and the
// reader's own progress, from their private entry. However many people
// read a lesson, its fragment is rendered once; a completion drops only
// the reader's progress entry.
//
// The fragment holds the lesson's HTML as the cache entry carries it: the
// entry is our own encoding of the embedded, already sanitised Markdown,
// trusted as the other cached bodies are.

// fragments renders and keeps the shared lesson fragments.
type fragments struct {
	cache   *renderedCache
	flights singleflight.Group
	renders atomic.Int64 // fragment renders, for the tests
}

func newFragments() *fragments { return &fragments{cache: newRenderedCache(4 << 20)} }

// lessonView is the shared fragment's data: the lesson and where it sits.
type lessonView struct {
	Lesson    *service.AcademyLesson
	Course    *service.CourseSummary
	Position  int // 1-based, in its course
	HTML      template.HTML
	NextSlug  string
	NextTitle string
}

// lessonPageData is the whole lesson page: the shared fragment plus the
// reader's part.
type lessonPageData struct {
	Body      template.HTML // the shared fragment
	Slug      string
	Course    *service.CourseSummary
	Progress  *service.AcademyProgress // nil: anonymous, or progress unavailable
	Done      bool
	CourseP   service.CourseProgress
	NextSlug  string
	NextTitle string
	Outline   []outlineItem
	Stale     bool // the progress could not be read
}

// outlineItem is one lesson of the side outline, marked for the reader.
type outlineItem struct {
	Slug, Title string
	Minutes     int
	Done        bool
	Current     bool
}

// publicView is the view of a public page: the caller's session when there
// is one that checks out, else anonymous (a public page never redirects).
func (a *app) publicView(r *http.Request, title, nav string) *view {
	v := &view{Title: title, Nav: nav}
	if u, err := a.authenticate(r); err == nil && u != nil {
		v.User, v.CSRF = u, csrfToken(credential(r))
	}
	return v
}

// courses reads the shared course list.
func (a *app) courses(r *http.Request) (*service.AcademyCourses, string, error) {
	e, err := a.svc.AcademyCourses(r.Context())
	if err != nil {
		return nil, "", err
	}
	etag := e.ETag
	c, err := decodeEntry[service.AcademyCourses](a.decode, "academy-courses", &e)
	return c, etag, err
}

// progress reads the reader's own part; nil for an anonymous reader. A
// failure is not the page's: the lessons are still worth reading, so it is
// logged and the page says the progress is unavailable.
func (a *app) progress(r *http.Request, u *modellab.User) (*service.AcademyProgress, string, bool) {
	if u == nil {
		return nil, "", false
	}
	e, err := a.svc.AcademyProgress(r.Context(), u)
	if err == nil {
		etag := e.ETag
		var p *service.AcademyProgress
		if p, err = decodeEntry[service.AcademyProgress](a.decode, "academy-progress", &e); err == nil {
			return p, etag, false
		}
	}
	a.log.WarnContext(r.Context(), "academy progress unavailable", "user_id", u.ID, "err", err)
	return nil, "", true
}

func (a *app) lessonPage(w http.ResponseWriter, r *http.Request) {
	v := a.publicView(r, "Lab Academy", "academy")
	le, err := a.svc.AcademyLesson(r.Context(), r.PathValue("lesson"))
	if err != nil {
		a.fail(w, r, v, err)
		return
	}
	res, lessonTag := le.Result, le.ETag
	courses, coursesTag, err := a.courses(r)
	if err != nil {
		a.fail(w, r, v, err)
		return
	}
	frag, lv, err := a.lessonFragment(&le, coursesTag, courses)
	if err != nil {
		a.fail(w, r, v, err)
		return
	}
	d := lessonPageData{Body: frag, Slug: lv.Lesson.Slug, Course: lv.Course, NextSlug: lv.NextSlug, NextTitle: lv.NextTitle}
	p, pe, stale := a.progress(r, v.User)
	d.Progress, d.Stale = p, stale
	if p != nil {
		d.Done, d.CourseP = p.Done(d.Slug), p.Course(lv.Course.Slug)
	}
	d.Outline = outline(lv.Course, p, d.Slug)
	v.Title, v.Data = lv.Lesson.Title, &d
	setXCache(w, res)
	key := ""
	if !stale {
		key = pageKey("lesson", v, lessonTag, coursesTag, pe)
	}
	a.renderCached(w, r, http.StatusOK, "lesson", "layout", v, key)
}

// lessonFragment returns the shared fragment of lesson entry le, rendering
// it once per version of the lesson and course entries (concurrent first
// readers share the one render).
func (a *app) lessonFragment(le *service.Answer, coursesTag string, courses *service.AcademyCourses) (template.HTML, *lessonView, error) {
	key := "lesson\x00" + le.ETag + "\x00" + coursesTag
	l, err := decodeEntry[service.AcademyLesson](a.decode, "academy-lesson", le)
	if err != nil {
		return "", nil, err
	}
	lv := newLessonView(l, courses)
	if b, ok := a.frags.cache.get(key); ok {
		return template.HTML(b), lv, nil
	}
	v, err, _ := a.frags.flights.Do(key, func() (any, error) {
		if b, ok := a.frags.cache.get(key); ok {
			return b, nil
		}
		var buf bytes.Buffer
		if err := a.pages["lesson"].t.ExecuteTemplate(&buf, "lesson_body", lv); err != nil {
			return nil, modellab.WrapError(modellab.EINTERNAL, err, "render lesson %s", l.Slug)
		}
		a.frags.renders.Add(1)
		b := buf.Bytes()
		a.frags.cache.put(key, b)
		return b, nil
	})
	if err != nil {
		return "", nil, err
	}
	return template.HTML(v.([]byte)), lv, nil
}

// newLessonView places lesson l in its course, and names the next lesson.
func newLessonView(l *service.AcademyLesson, courses *service.AcademyCourses) *lessonView {
	lv := &lessonView{Lesson: l, HTML: template.HTML(l.HTML), Course: &service.CourseSummary{Slug: l.Course}}
	for i := range courses.Courses {
		c := &courses.Courses[i]
		for j, s := range c.Lessons {
			if c.Slug == l.Course && s.Slug == l.Slug {
				lv.Course, lv.Position = c, j+1
			}
			if l.Next != nil && s.Slug == *l.Next {
				lv.NextSlug, lv.NextTitle = s.Slug, s.Title
			}
		}
	}
	return lv
}

func outline(c *service.CourseSummary, p *service.AcademyProgress, current string) []outlineItem {
	out := make([]outlineItem, len(c.Lessons))
	for i, l := range c.Lessons {
		out[i] = outlineItem{Slug: l.Slug, Title: l.Title, Minutes: l.Minutes, Current: l.Slug == current}
		if p != nil {
			out[i].Done = p.Done(l.Slug)
		}
	}
	return out
}

// academyData is the course index: each course with the reader's progress.
type academyData struct {
	Courses  []courseCard
	Done     int
	Total    int
	LoggedIn bool
	Stale    bool
}

type courseCard struct {
	*service.CourseSummary
	Outline  []outlineItem
	Progress service.CourseProgress
	Minutes  int
	NextSlug string // the first lesson not done, else the first
	Started  bool
}

func (a *app) academyIndex(w http.ResponseWriter, r *http.Request) {
	v := a.publicView(r, "Lab Academy", "academy")
	courses, ce, err := a.courses(r)
	if err != nil {
		a.fail(w, r, v, err)
		return
	}
	p, pe, stale := a.progress(r, v.User)
	d := academyData{LoggedIn: v.User != nil, Stale: stale}
	for i := range courses.Courses {
		c := &courses.Courses[i]
		card := courseCard{CourseSummary: c, Outline: outline(c, p, ""), Progress: service.CourseProgress{Slug: c.Slug, Total: len(c.Lessons)}}
		if p != nil {
			card.Progress = p.Course(c.Slug)
		}
		for _, o := range card.Outline {
			card.Minutes += o.Minutes
			if !o.Done && card.NextSlug == "" {
				card.NextSlug = o.Slug
			}
		}
		if card.NextSlug == "" && len(c.Lessons) > 0 {
			card.NextSlug = c.Lessons[0].Slug
		}
		card.Started = card.Progress.Done > 0
		d.Done += card.Progress.Done
		d.Total += card.Progress.Total
		d.Courses = append(d.Courses, card)
	}
	v.Data = &d
	key := ""
	if !stale {
		key = pageKey("academy", v, ce, pe)
	}
	a.renderCached(w, r, http.StatusOK, "academy", "layout", v, key)
}

// completeLesson is the lesson page's form: mark the lesson complete and go
// back to it (303, so a reload does not send the form again).
func (a *app) completeLesson(w http.ResponseWriter, r *http.Request, v *view) error {
	slug := r.PathValue("lesson")
	if _, err := a.svc.CompleteLesson(r.Context(), v.User, slug); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/academy/"+url.PathEscape(slug), http.StatusSeeOther)
	return nil
}
