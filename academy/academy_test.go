package academy_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modellab/modellab/academy"
)

func TestEmbeddedCatalog(t *testing.T) {
	c, err := academy.Embedded()
	if err != nil {
		t.Fatalf("the shipped lessons do not load: %v", err)
	}
	if n := len(c.Courses()); n < 3 {
		t.Fatalf("%d courses, want at least 3", n)
	}
	seen := map[string]bool{}
	for _, co := range c.Courses() {
		if n := len(co.Lessons); n < 3 || n > 5 {
			t.Errorf("course %s has %d lessons, want 3 to 5", co.Slug, n)
		}
		if co.Title == "" || co.Summary == "" {
			t.Errorf("course %s: title %q summary %q", co.Slug, co.Title, co.Summary)
		}
		for i, l := range co.Lessons {
			if seen[l.Slug] {
				t.Errorf("lesson slug %s is used twice", l.Slug)
			}
			seen[l.Slug] = true
			if l.Course != co || l.Position != i+1 {
				t.Errorf("%s: course %v position %d, want %s %d", l.Slug, l.Course.Slug, l.Position, co.Slug, i+1)
			}
			if got, ok := c.Lesson(l.Slug); !ok || got != l {
				t.Errorf("Lesson(%q) = %v, %v", l.Slug, got, ok)
			}
		}
	}
	if len(seen) != len(c.Lessons()) {
		t.Errorf("Lessons() has %d lessons, the courses %d", len(c.Lessons()), len(seen))
	}
}

// Every lesson renders to HTML with a paragraph, highlighted code keeps to
// CSS classes, and nothing of the source's raw HTML comes through.
func TestEveryLessonRenders(t *testing.T) {
	c := academy.MustEmbedded()
	for _, l := range c.Lessons() {
		t.Run(l.Slug, func(t *testing.T) {
			if l.Title == "" {
				t.Errorf("no title")
			}
			if !strings.Contains(l.HTML, "<p>") {
				t.Errorf("no paragraph in:\n%s", l.HTML)
			}
			if strings.Contains(l.HTML, "<h1") {
				t.Errorf("a lesson body has an h1 (the page's title is the only one)")
			}
			for _, bad := range []string{"style=", "<script", "raw HTML omitted"} {
				if strings.Contains(l.HTML, bad) {
					t.Errorf("body holds %q", bad)
				}
			}
			if l.Minutes < 1 {
				t.Errorf("minutes %d", l.Minutes)
			}
		})
	}
}

// Links between lessons resolve, the chain of next lessons visits every
// lesson once in catalog order, and every lesson but the first is linked
// from somewhere (no orphan).
func TestLinksResolve(t *testing.T) {
	c := academy.MustEmbedded()
	linked := map[string]bool{}
	for _, l := range c.Lessons() {
		for _, dest := range l.Links {
			slug, ok := academy.LessonLink(dest)
			if !ok {
				continue
			}
			if _, found := c.Lesson(slug); !found {
				t.Errorf("%s links to %s: no such lesson", l.Slug, dest)
			}
			linked[slug] = true
		}
	}
	order := c.Lessons()
	for i, l := range order {
		want := (*academy.Lesson)(nil)
		if i+1 < len(order) {
			want = order[i+1]
		}
		if l.Next != want {
			t.Errorf("%s: next is %v, want %v", l.Slug, l.Next, want)
		}
		if i > 0 && !linked[l.Slug] {
			t.Errorf("no lesson links to %s", l.Slug)
		}
	}
	href := regexp.MustCompile(`href="([^"]*)"`)
	for _, l := range order {
		for _, m := range href.FindAllStringSubmatch(l.HTML, -1) {
			if !strings.HasPrefix(m[1], "/") && !strings.HasPrefix(m[1], "#") {
				t.Errorf("%s: rendered link %q leaves the site", l.Slug, m[1])
			}
		}
	}
}

func lessonFS(lessons map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{"01-basics/course.md": {Data: []byte("---\ntitle: Basics\nsummary: The basics.\n---\n")}}
	for name, body := range lessons {
		fsys["01-basics/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func TestLoadRejects(t *testing.T) {
	ok := "---\ntitle: Fine\n---\n\nSome text.\n"
	tests := []struct {
		name    string
		lessons map[string]string
		want    string
	}{
		{"broken lesson link", map[string]string{"01-a.md": "---\ntitle: A\n---\n\nSee [b](/academy/nope).\n"}, "no such lesson"},
		{"external link", map[string]string{"01-a.md": "---\ntitle: A\n---\n\nSee [x](https://example.com/).\n"}, "leaves the site"},
		{"bare URL", map[string]string{"01-a.md": "---\ntitle: A\n---\n\nSee https://example.com/ now.\n"}, "leaves the site"},
		{"no front matter", map[string]string{"01-a.md": "Text.\n"}, "no front matter"},
		{"no title", map[string]string{"01-a.md": "---\nsummary: x\n---\n\nText.\n"}, "want one of title"},
		{"h1 in the body", map[string]string{"01-a.md": "---\ntitle: A\n---\n\n# Big\n\nText.\n"}, "start at ##"},
		{"bad file name", map[string]string{"first.md": ok}, "01-some-slug"},
		{"upper-case slug", map[string]string{"01-First.md": ok}, "01-some-slug"},
		{"same number", map[string]string{"01-a.md": ok, "01-b.md": ok}, "share a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := academy.Load(lessonFS(tt.lessons))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSlugsUniqueAcrossCourses(t *testing.T) {
	fsys := lessonFS(map[string]string{"01-intro.md": "---\ntitle: A\n---\n\nText.\n"})
	fsys["02-more/course.md"] = &fstest.MapFile{Data: []byte("---\ntitle: More\nsummary: More.\n---\n")}
	fsys["02-more/01-intro.md"] = &fstest.MapFile{Data: []byte("---\ntitle: B\n---\n\nText.\n")}
	if _, err := academy.Load(fsys); err == nil || !strings.Contains(err.Error(), `slug "intro"`) {
		t.Fatalf("Load with a slug in two courses: %v, want a duplicate slug error", err)
	}
}

func TestRendering(t *testing.T) {
	src := "---\ntitle: T\n---\n\n## Part one\n\n<script>alert(1)</script>\n\n<b>bold</b> text\n\n" +
		"| a | b |\n| --- | --- |\n| 1 | 2 |\n\n```sh\ncurl -s http://localhost:8080/healthz\n```\n\n```nolang\n<tag> & \"q\"\n```\n\nNext: [Two](/academy/two#part).\n"
	c, err := academy.Load(lessonFS(map[string]string{"01-one.md": src, "02-two.md": "---\ntitle: Two\n---\n\nText.\n"}))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := c.Lesson("one")
	for _, want := range []string{
		`<h2 id="part-one">Part one</h2>`,
		"<table>", "<td>1</td>",
		`<pre class="chroma">`,                            // highlighted, with classes
		`<code class="language-nolang">&lt;tag&gt; &amp;`, // an unknown language is escaped, not passed
		`<a href="/academy/two#part">Two</a>`,
	} {
		if !strings.Contains(l.HTML, want) {
			t.Errorf("rendered lesson lacks %s:\n%s", want, l.HTML)
		}
	}
	for _, bad := range []string{"<script", "<b>", "style="} {
		if strings.Contains(l.HTML, bad) {
			t.Errorf("rendered lesson holds %s:\n%s", bad, l.HTML)
		}
	}
	if l.Next == nil || l.Next.Slug != "two" {
		t.Errorf("next = %v, want two", l.Next)
	}
}

func TestReadingMinutes(t *testing.T) {
	words := func(n int) string { return strings.Repeat("word ", n) }
	tests := []struct {
		name string
		body string
		want int
	}{
		{"short", words(20), 1},
		{"empty", "", 1},
		{"two minutes", words(400), 2},
		{"rounds up", words(401), 3},
		{"code counts", words(199) + "\n```sh\n" + words(200) + "\n```\n", 2}, // the fence's "sh" is a word
		{"code counts more", words(199) + "\n```sh\n" + words(201) + "\n```\n", 3},
		{"punctuation does not", words(200) + strings.Repeat("| --- | ``` - * ", 300), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := academy.Load(lessonFS(map[string]string{"01-x.md": "---\ntitle: X\n---\n\n" + tt.body + "\n"}))
			if err != nil {
				t.Fatal(err)
			}
			if l, _ := c.Lesson("x"); l.Minutes != tt.want {
				t.Errorf("minutes = %d, want %d", l.Minutes, tt.want)
			}
		})
	}
}

// The stylesheet the pages serve for highlighted code is the one this
// package generates (go test ./academy -run Stylesheet -update rewrites it).
func TestStylesheet(t *testing.T) {
	var buf bytes.Buffer
	if err := academy.WriteStylesheet(&buf); err != nil {
		t.Fatal(err)
	}
	css := buf.String()
	for _, want := range []string{".chroma", "@media (prefers-color-scheme: dark)", ".chroma .k "} {
		if !strings.Contains(css, want) {
			t.Errorf("stylesheet lacks %q", want)
		}
	}
	const path = "../web/static/highlight.css"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./academy -run Stylesheet -update)", err)
	}
	if string(got) != css {
		t.Errorf("%s is not what WriteStylesheet writes: run go test ./academy -run Stylesheet -update", path)
	}
}
