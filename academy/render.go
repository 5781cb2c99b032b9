package academy

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"

	chromahtml "github.com/alecthomas/chroma/v2/formatters/html"
	"github.com/alecthomas/chroma/v2/styles"
	"github.com/yuin/goldmark"
	highlighting "github.com/yuin/goldmark-highlighting/v2"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
)

// Highlighting styles of code blocks: the light one, and the dark one for
// readers whose system prefers a dark scheme (as the pages' stylesheet).
const (
	lightStyle = "github"
	darkStyle  = "github-dark"
)

// chromaOptions make chroma write CSS classes, never inline styles: the
// pages' Content-Security-Policy allows no inline style.
var chromaOptions = []chromahtml.Option{chromahtml.WithClasses(true), chromahtml.TabWidth(4)}

type renderer struct{ md goldmark.Markdown }

func newRenderer() *renderer {
	return &renderer{md: goldmark.New(
		goldmark.WithExtensions(
			extension.GFM,
			highlighting.NewHighlighting(
				highlighting.WithStyle(lightStyle),
				highlighting.WithFormatOptions(chromaOptions...),
			),
		),
		// Headings get ids so that a lesson can link to a section. Raw
		// HTML stays off (goldmark's default): it is dropped, not passed.
		goldmark.WithParserOptions(parser.WithAutoHeadingID()),
	)}
}

// lesson parses and renders one lesson file.
func (r *renderer) lesson(src []byte) (*Lesson, error) {
	meta, body, err := frontMatter(src, "title")
	if err != nil {
		return nil, err
	}
	doc := r.md.Parser().Parse(text.NewReader(body))
	l := &Lesson{Title: meta["title"], Minutes: readingMinutes(body)}
	if err := inspect(doc, body, l); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := r.md.Renderer().Render(&buf, body, doc); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	l.HTML = buf.String()
	return l, nil
}

// inspect collects the links of doc into l and checks the rules of the
// content: the title is the page's only h1, and links stay on the site.
func inspect(doc ast.Node, src []byte, l *Lesson) error {
	return ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		var dest string
		switch n := n.(type) {
		case *ast.Heading:
			if n.Level == 1 {
				return ast.WalkStop, fmt.Errorf("a lesson's headings start at ## (its title is the page's heading)")
			}
			return ast.WalkContinue, nil
		case *ast.Link:
			dest = string(n.Destination)
		case *ast.AutoLink:
			dest = string(n.URL(src))
		case *ast.Image:
			return ast.WalkStop, fmt.Errorf("images are not supported (%s)", n.Destination)
		default:
			return ast.WalkContinue, nil
		}
		if !strings.HasPrefix(dest, "/") && !strings.HasPrefix(dest, "#") || strings.HasPrefix(dest, "//") {
			return ast.WalkStop, fmt.Errorf("link %q leaves the site: lessons link to pages of the lab only (write example URLs as code)", dest)
		}
		l.Links = append(l.Links, dest)
		return ast.WalkContinue, nil
	})
}

// readingMinutes estimates the reading time of a Markdown body: its words,
// code included, at WordsPerMinute, rounded up: technical text with code
// reads slower than prose, and a page is never "0 minutes". A word is
// a run of text holding a letter or a digit, so Markdown punctuation
// (fences, table rules, list bullets) does not count.
func readingMinutes(body []byte) int {
	words := 0
	for _, f := range strings.Fields(string(body)) {
		if strings.IndexFunc(f, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0 {
			words++
		}
	}
	return max(1, int(math.Ceil(float64(words)/WordsPerMinute)))
}

// WriteStylesheet writes the CSS of highlighted code: the light style,
// and the dark one under prefers-color-scheme: dark.
func WriteStylesheet(w io.Writer) error {
	f := chromahtml.New(chromaOptions...)
	var b bytes.Buffer
	b.WriteString("/* Highlighted code of the Lab Academy lessons (chroma, " + lightStyle + " and " + darkStyle + "). Generated: do not edit. */\n")
	var light, dark bytes.Buffer
	if err := f.WriteCSS(&light, styles.Get(lightStyle)); err != nil {
		return err
	}
	if err := f.WriteCSS(&dark, styles.Get(darkStyle)); err != nil {
		return err
	}
	writeRules(&b, light.String(), "")
	b.WriteString("@media (prefers-color-scheme: dark) {\n")
	writeRules(&b, dark.String(), "  ")
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// writeRules copies chroma's CSS rules, indented, but for the rule of the
// global class .bg, which pages never use and which could clash with theirs.
func writeRules(b *bytes.Buffer, css, indent string) {
	for _, line := range strings.SplitAfter(css, "\n") {
		if line == "" || strings.Contains(line, "*/ .bg ") {
			continue
		}
		b.WriteString(indent + line)
	}
}
