package web

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/service"
)

// The admin view of the cache (admins only): the tiers and Redis state,
// each endpoint's hit ratio, the hottest keys, a bounded browser of the
// entries under a prefix, and purges by key, pattern or tag.

type adminCacheData struct {
	Report  service.CacheReport
	Prefix  string
	Page    *cache.BrowsePage
	NextURL string
	Purged  string
	Error   string
}

func (a *app) adminCache(w http.ResponseWriter, r *http.Request, v *view) error {
	rep, err := a.svc.CacheReport(v.User)
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	d := &adminCacheData{Report: rep, Prefix: qv.Get("prefix"), Purged: qv.Get("purged")}
	if _, browse := qv["prefix"]; browse {
		page, err := a.svc.BrowseCache(r.Context(), v.User, d.Prefix, qv.Get("cursor"))
		if err != nil && modellab.ErrorCode(err) != modellab.EINVALID {
			return err
		}
		if err != nil {
			d.Error = sentence(modellab.ErrorMessage(err))
		} else {
			d.Page = &page
			if page.Cursor != "" {
				d.NextURL = "/admin/cache?" + url.Values{"prefix": {d.Prefix}, "cursor": {page.Cursor}}.Encode()
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	v.Title, v.Nav, v.Data = "Cache", "admin", d
	a.renderPage(w, r, http.StatusOK, "admin_cache", v)
	return nil
}

// adminPurge is the purge form: by key, pattern or tag, then back to the
// view with what was dropped (303, so a reload does not purge again).
func (a *app) adminPurge(w http.ResponseWriter, r *http.Request, v *view) error {
	value := r.PostForm.Get("value")
	var p service.Purge
	switch r.PostForm.Get("kind") {
	case "key":
		p.Key = value
	case "tag":
		p.Tag = value
	default:
		p.Pattern = value
	}
	n, err := a.svc.PurgeAs(r.Context(), v.User, p)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("Purged %s %q: %d key(s) dropped.", r.PostForm.Get("kind"), value, n)
	if p.Tag != "" {
		msg = fmt.Sprintf("Purged tag %q: every entry that recorded it is gone.", value)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/admin/cache?"+url.Values{"purged": {msg}}.Encode(), http.StatusSeeOther)
	return nil
}
