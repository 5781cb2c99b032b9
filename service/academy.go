package service

import (
	"context"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/academy"
	"github.com/modellab/modellab/cache"
)

// AcademyStore is what Lab Academy needs from the database: who completed
// which lesson.
type AcademyStore interface {
	// CompleteLesson records a completion; a second one changes nothing.
	CompleteLesson(ctx context.Context, userID, lesson string, at time.Time) error
	// CompletedLessons returns the slugs userID completed.
	CompletedLessons(ctx context.Context, userID string) ([]string, error)
}

// AcademyCourses returns the encoded course list, the same for everyone.
func (s *Service) AcademyCourses(ctx context.Context) (Answer, error) {
	spec := readSpec{key: keyAcademyCourses, group: GroupAcademy, ttl: s.cfg.AcademyTTL}
	return answerOf(cachedContent(ctx, s, spec, s.cfg.Academy, coursesBody))
}

// AcademyLesson returns the encoded lesson slug, the same for everyone;
// ENOTFOUND for a slug the catalog does not hold (which therefore never
// reaches a cache key).
func (s *Service) AcademyLesson(ctx context.Context, slug string) (Answer, error) {
	l, ok := s.cfg.Academy.Lesson(slug)
	if !ok {
		return Answer{}, modellab.Errorf(modellab.ENOTFOUND, "lesson not found")
	}
	spec := readSpec{key: keyAcademyLesson(l.Slug), group: GroupAcademy, ttl: s.cfg.AcademyTTL}
	return answerOf(cachedContent(ctx, s, spec, l, lessonBody))
}

// AcademyProgress returns u's encoded progress, cached for u alone.
func (s *Service) AcademyProgress(ctx context.Context, u *modellab.User) (Answer, error) {
	spec := readSpec{key: keyAcademyProgress(u.ID), group: GroupAcademy, ttl: s.cfg.AcademyTTL}
	return answerOf(cachedRead(ctx, s, spec, u.ID, loadProgress))
}

// CompleteLesson marks lesson slug completed for u (again is fine) and
// returns u's progress. It drops u's progress entry only: the lesson and
// the course list are shared and unchanged.
func (s *Service) CompleteLesson(ctx context.Context, u *modellab.User, slug string) (AcademyProgress, error) {
	if _, ok := s.cfg.Academy.Lesson(slug); !ok {
		return AcademyProgress{}, modellab.Errorf(modellab.ENOTFOUND, "lesson not found")
	}
	err := s.withDB(ctx, func(ctx context.Context) error {
		return s.store.CompleteLesson(ctx, u.ID, slug, s.stamp())
	})
	if err != nil {
		return AcademyProgress{}, err
	}
	s.cache.Invalidate(ctx, keyAcademyProgress(u.ID))
	var p AcademyProgress
	err = s.withDB(ctx, func(ctx context.Context) error {
		p, err = loadProgress(ctx, s, u.ID)
		return err
	})
	return p, err
}

// cachedContent is cachedRead for values computed from the embedded
// catalog: a miss encodes without a database slot, since none is used.
func cachedContent[A, T any](ctx context.Context, s *Service, spec readSpec, arg A, body func(A) T) (*cache.Entry, cache.Result, error) {
	if e, ok := s.cache.Peek(spec.key, spec.group); ok {
		return e, cache.Hit, nil
	}
	return s.cache.Fetch(ctx, spec.key, spec.fetchOptions(),
		func(context.Context) ([]byte, error) { return encode(body(arg)) })
}

func coursesBody(c *academy.Catalog) AcademyCourses {
	out := AcademyCourses{Courses: make([]CourseSummary, 0, len(c.Courses()))}
	for _, co := range c.Courses() {
		cs := CourseSummary{Slug: co.Slug, Title: co.Title, Summary: co.Summary, Lessons: make([]LessonSummary, 0, len(co.Lessons))}
		for _, l := range co.Lessons {
			cs.Lessons = append(cs.Lessons, LessonSummary{Slug: l.Slug, Title: l.Title, Minutes: l.Minutes})
		}
		out.Courses = append(out.Courses, cs)
	}
	return out
}

func lessonBody(l *academy.Lesson) AcademyLesson {
	b := AcademyLesson{Slug: l.Slug, Title: l.Title, Course: l.Course.Slug, Minutes: l.Minutes, HTML: l.HTML}
	if l.Next != nil {
		next := l.Next.Slug
		b.Next = &next
	}
	return b
}

// loadProgress reads userID's completions and counts them against the
// catalog: lessons it no longer holds do not count.
func loadProgress(ctx context.Context, s *Service, userID string) (AcademyProgress, error) {
	done, err := s.store.CompletedLessons(ctx, userID)
	if err != nil {
		return AcademyProgress{}, err
	}
	return progressOf(s.cfg.Academy, done), nil
}

func progressOf(c *academy.Catalog, completed []string) AcademyProgress {
	set := make(map[string]bool, len(completed))
	for _, slug := range completed {
		set[slug] = true
	}
	p := AcademyProgress{Completed: []string{}, Courses: make([]CourseProgress, 0, len(c.Courses()))}
	for _, co := range c.Courses() {
		cp := CourseProgress{Slug: co.Slug, Total: len(co.Lessons)}
		for _, l := range co.Lessons {
			if set[l.Slug] {
				cp.Done++
				p.Completed = append(p.Completed, l.Slug)
			}
		}
		p.Courses = append(p.Courses, cp)
	}
	return p
}
