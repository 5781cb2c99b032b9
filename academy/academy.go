package academy

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed courses
var content embed.FS

// WordsPerMinute is the reading speed behind Lesson.Minutes.
const WordsPerMinute = 200

// Catalog is every course and lesson, in order. It is immutable after
// Load and safe for concurrent use.
type Catalog struct {
	courses []*Course
	lessons map[string]*Lesson
	order   []*Lesson // every lesson, course after course
}

// Course is a titled sequence of lessons.
type Course struct {
	Slug    string
	Title   string
	Summary string
	Lessons []*Lesson
}

// Lesson is one rendered Markdown file.
type Lesson struct {
	Slug   string
	Title  string
	Course *Course
	// Position is the lesson's 1-based place in its course.
	Position int
	// Minutes is the estimated reading time: words (code included) at
	// WordsPerMinute, rounded up.
	Minutes int
	// HTML is the rendered body, safe to embed in a page: raw HTML in the
	// source is dropped, not passed through.
	HTML string
	// Next is the lesson after this one, continuing into the next course;
	// nil for the last lesson of the catalog.
	Next *Lesson
	// Links are the link destinations of the body, as written.
	Links []string
}

// Courses returns the courses in order. The slice is shared: do not change it.
func (c *Catalog) Courses() []*Course { return c.courses }

// Lessons returns every lesson, course after course. The slice is shared.
func (c *Catalog) Lessons() []*Lesson { return c.order }

// Lesson returns the lesson with slug.
func (c *Catalog) Lesson(slug string) (*Lesson, bool) {
	l, ok := c.lessons[slug]
	return l, ok
}

// Course returns the course with slug.
func (c *Catalog) Course(slug string) (*Course, bool) {
	for _, co := range c.courses {
		if co.Slug == slug {
			return co, true
		}
	}
	return nil, false
}

// Embedded returns the catalog shipped in the binary, loaded once.
var Embedded = sync.OnceValues(func() (*Catalog, error) {
	sub, err := fs.Sub(content, "courses")
	if err != nil {
		return nil, err
	}
	return Load(sub)
})

// MustEmbedded is Embedded for callers that cannot handle the error: it
// only fails when the shipped content is broken, which every test sees.
func MustEmbedded() *Catalog {
	c, err := Embedded()
	if err != nil {
		panic(err)
	}
	return c
}

// Load reads a catalog from fsys: one folder NN-slug per course, holding
// course.md and lessons NN-slug.md. It renders every lesson and checks
// that slugs are unique and that links to /academy/{slug} resolve.
func Load(fsys fs.FS) (*Catalog, error) {
	dirs, err := numbered(fsys, ".", true)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("academy: no course folders")
	}
	c := &Catalog{lessons: map[string]*Lesson{}}
	r := newRenderer()
	for _, d := range dirs {
		co, err := loadCourse(fsys, d, r)
		if err != nil {
			return nil, err
		}
		for _, l := range co.Lessons {
			if prev, dup := c.lessons[l.Slug]; dup {
				return nil, fmt.Errorf("academy: lesson slug %q is used in %s and %s", l.Slug, prev.Course.Slug, co.Slug)
			}
			c.lessons[l.Slug] = l
			c.order = append(c.order, l)
		}
		if _, dup := c.Course(co.Slug); dup {
			return nil, fmt.Errorf("academy: course slug %q is used twice", co.Slug)
		}
		c.courses = append(c.courses, co)
	}
	for i, l := range c.order {
		if i+1 < len(c.order) {
			l.Next = c.order[i+1]
		}
	}
	return c, c.checkLinks()
}

// entry is a file or folder named NN-slug.
type entry struct {
	name string // as in the folder
	slug string
}

// numbered lists the NN-slug entries of dir (folders when dirs is set,
// else .md files other than course.md), in number order.
func numbered(fsys fs.FS, dir string, dirs bool) ([]entry, error) {
	des, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("academy: %w", err)
	}
	type numEntry struct {
		n int
		entry
	}
	var out []numEntry
	for _, de := range des {
		name := de.Name()
		if de.IsDir() != dirs || !dirs && (name == "course.md" || path.Ext(name) != ".md") {
			continue
		}
		num, slug, ok := strings.Cut(strings.TrimSuffix(name, ".md"), "-")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || !validSlug(slug) {
			return nil, fmt.Errorf("academy: %s: want a name like 01-some-slug", path.Join(dir, name))
		}
		out = append(out, numEntry{n, entry{name: name, slug: slug}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	list := make([]entry, len(out))
	for i, e := range out {
		if i > 0 && out[i-1].n == e.n {
			return nil, fmt.Errorf("academy: %s and %s share a number", out[i-1].name, e.name)
		}
		list[i] = e.entry
	}
	return list, nil
}

// validSlug allows lower-case letters, digits and inner dashes: safe in a
// URL path and in a cache key.
func validSlug(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func loadCourse(fsys fs.FS, d entry, r *renderer) (*Course, error) {
	src, err := fs.ReadFile(fsys, path.Join(d.name, "course.md"))
	if err != nil {
		return nil, fmt.Errorf("academy: %w", err)
	}
	meta, _, err := frontMatter(src, "title", "summary")
	if err != nil {
		return nil, fmt.Errorf("academy: %s/course.md: %w", d.name, err)
	}
	co := &Course{Slug: d.slug, Title: meta["title"], Summary: meta["summary"]}
	files, err := numbered(fsys, d.name, false)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("academy: course %s has no lessons", d.name)
	}
	for i, f := range files {
		name := path.Join(d.name, f.name)
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("academy: %w", err)
		}
		l, err := r.lesson(src)
		if err != nil {
			return nil, fmt.Errorf("academy: %s: %w", name, err)
		}
		l.Slug, l.Course, l.Position = f.slug, co, i+1
		co.Lessons = append(co.Lessons, l)
	}
	return co, nil
}

// frontMatter splits "---\nkey: value\n…\n---\n" from the body. Every key
// in want is required and no other key is allowed: a typo fails loudly.
func frontMatter(src []byte, want ...string) (map[string]string, []byte, error) {
	s := strings.ReplaceAll(string(src), "\r\n", "\n")
	rest, ok := strings.CutPrefix(s, "---\n")
	if !ok {
		return nil, nil, fmt.Errorf("no front matter (the file must start with ---)")
	}
	head, body, ok := strings.Cut(rest, "\n---\n")
	if !ok {
		return nil, nil, fmt.Errorf("front matter is not closed by ---")
	}
	meta := map[string]string{}
	for _, line := range strings.Split(head, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !contains(want, k) {
			return nil, nil, fmt.Errorf("front matter line %q: want one of %s", line, strings.Join(want, ", "))
		}
		meta[k] = v
	}
	for _, k := range want {
		if meta[k] == "" {
			return nil, nil, fmt.Errorf("front matter has no %s", k)
		}
	}
	return meta, []byte(body), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkLinks makes sure every /academy/… link names a lesson.
func (c *Catalog) checkLinks() error {
	for _, l := range c.order {
		for _, dest := range l.Links {
			slug, ok := LessonLink(dest)
			if !ok {
				continue
			}
			if _, found := c.lessons[slug]; !found {
				return fmt.Errorf("academy: lesson %s links to %s: no such lesson", l.Slug, dest)
			}
		}
	}
	return nil
}

// LessonLink reports whether dest is a link to a lesson (/academy/{slug},
// maybe with a #fragment) and returns the slug.
func LessonLink(dest string) (string, bool) {
	p, _, _ := strings.Cut(dest, "#")
	slug, ok := strings.CutPrefix(p, "/academy/")
	return slug, ok && slug != ""
}
