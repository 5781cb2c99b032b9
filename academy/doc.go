// Package academy is Lab Academy: short courses about modellab itself,
// written as Markdown files under courses/ and embedded in the binary.
//
// Each course is a folder courses/NN-slug holding a course.md (front
// matter: title, summary) and its lessons NN-slug.md (front matter: title),
// ordered by their number prefix. Slugs are the names without the prefix
// and are unique across the whole catalog, so a lesson's URL is
// /academy/{slug}.
//
// Load parses and renders everything once: Markdown through goldmark with
// the GitHub extensions (tables, fenced code, autolinks), raw HTML dropped
// rather than passed through, headings given ids, and fenced code
// highlighted by chroma into CSS classes (see WriteStylesheet) so that the
// pages need no inline style. A link to /academy/{slug} must name a lesson
// of the catalog: a broken link fails Load, and so every test.
//
// The catalog is the same for every reader and never changes while the
// process runs; what differs per reader (their progress) is the service's
// business, not this package's.
package academy
