package web

import (
	"bytes"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/modellab/modellab/cache"
)

// asset is one embedded static file, served from memory.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets serves /static/. URLs carry a content hash (?v=…), so browsers may
// keep a file for a year: a changed file gets a new URL.
type assets struct {
	files map[string]*asset // by name under static/
}

func newAssets(fsys fs.FS) (*assets, error) {
	a := &assets{files: map[string]*asset{}}
	entries, err := fs.ReadDir(fsys, "static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(fsys, "static/"+e.Name())
		if err != nil {
			return nil, err
		}
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		a.files[e.Name()] = &asset{body: b, ctype: ct, etag: cache.ETagOf(b)}
	}
	return a, nil
}

// url returns the versioned URL of a static file; an unknown name is a bug
// in a template, reported when the template runs.
func (a *assets) url(name string) (string, error) {
	f, ok := a.files[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + name + "?v=" + strings.Trim(f.etag, `"`)[:12], nil
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[strings.TrimPrefix(r.URL.Path, "/static/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") != "" {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
