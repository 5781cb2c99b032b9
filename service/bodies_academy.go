package service

// The bodies of Lab Academy's reads. Courses and lessons are the same for
// every reader (public entries); progress is the reader's own.

// AcademyCourses is the body of GET /api/academy/courses.
type AcademyCourses struct {
	Courses []CourseSummary `json:"courses"`
}

// CourseSummary is one course and the outline of its lessons.
type CourseSummary struct {
	Slug    string          `json:"slug"`
	Title   string          `json:"title"`
	Summary string          `json:"summary"`
	Lessons []LessonSummary `json:"lessons"`
}

// LessonSummary is a lesson in a course's outline.
type LessonSummary struct {
	Slug    string `json:"slug"`
	Title   string `json:"title"`
	Minutes int    `json:"minutes"`
}

// AcademyLesson is the body of GET /api/academy/lessons/{slug}: HTML is the
// rendered lesson, safe to embed; Next is the following lesson's slug, nil
// after the last one.
type AcademyLesson struct {
	Slug    string  `json:"slug"`
	Title   string  `json:"title"`
	Course  string  `json:"course"`
	Minutes int     `json:"minutes"`
	HTML    string  `json:"html"`
	Next    *string `json:"next"`
}

// AcademyProgress is the body of GET /api/academy/progress and of a
// completed lesson: the caller's completed lessons in catalog order, and
// how far each course is done.
type AcademyProgress struct {
	Completed []string         `json:"completed"`
	Courses   []CourseProgress `json:"courses"`
}

// CourseProgress counts one course's completed lessons.
type CourseProgress struct {
	Slug  string `json:"slug"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

// Done reports whether slug is among the completed lessons.
func (p *AcademyProgress) Done(slug string) bool {
	for _, s := range p.Completed {
		if s == slug {
			return true
		}
	}
	return false
}

// Course returns the progress of course slug (zero when unknown).
func (p *AcademyProgress) Course(slug string) CourseProgress {
	for _, c := range p.Courses {
		if c.Slug == slug {
			return c
		}
	}
	return CourseProgress{Slug: slug}
}
