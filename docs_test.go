package modellab_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// mdLinkRE finds the target of a Markdown link or image.
	mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// outsideRE finds references a reader of this repository cannot follow:
	// documents that live outside it, and tracker items by number.
	outsideRE = regexp.MustCompile(`\.\./shared|\bSPEC(\.md)?\b|(?i:\bSPEC\.md\b|\bDESIGN\.md\b|design note|\bissue [0-9]+|the [a-z-]+ issue\b)`)
)

// docFiles are the Markdown files a reader of the repository starts from.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, files...)
}

// TestDocLinksResolve walks every relative link of README.md and docs/ and
// checks that its target exists in the repository, so that a fresh clone
// is all a reader needs.
func TestDocLinksResolve(t *testing.T) {
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLinkRE.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			path := filepath.Join(filepath.Dir(f), target)
			if rel, err := filepath.Rel(".", path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %q, outside the repository", f, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links %q: %v", f, m[1], err)
			}
		}
	}
}

// TestDocsStandAlone fails on a mention of a document or tracker item that
// is not part of the repository, in the docs and in the Go sources.
func TestDocsStandAlone(t *testing.T) {
	files := docFiles(t)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".sh") || d.Name() == "Makefile" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "docs_test.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := outsideRE.FindString(line); m != "" {
				t.Errorf("%s:%d mentions %q, which a reader of the repository cannot open", f, i+1, m)
			}
		}
	}
}
