package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/internal/transport"
	"github.com/modellab/modellab/service"
)

// The chat page: the caller's conversations, one conversation with its
// messages, and the form to write the next one. With JavaScript
// (static/chat.js) the reply streams into the page from the same POST,
// asked for as text/event-stream; without, the POST runs the reply to its
// end and redirects to the conversation, where it is shown stored.

type chatData struct {
	Conversations []convRow
	Models        []modellab.Model // the models with a running server
	Current       *convView        // nil on /chat
	Form          chatForm
	Error         string // a flash about the last action
}

type convRow struct {
	ID, Title, Model, Updated string
	Current                   bool
}

type convView struct {
	ID, Title, ModelName string
	Running              bool // the model has a running server to talk to
	Messages             []msgRow
}

type msgRow struct {
	ID, Role, Content, Status, Time string
}

type chatForm struct {
	ModelID, Title, Content string
}

// chatErrors word the failures a redirect after a reply names (?error=).
var chatErrors = map[string]string{
	modellab.EBADGATEWAY:     "The inference server failed while answering: the reply was cut short.",
	modellab.EGATEWAYTIMEOUT: "The inference server did not answer in time: the reply was cut short.",
	modellab.EUNAVAILABLE:    "No inference server is running this model right now.",
}

func (a *app) chat(w http.ResponseWriter, r *http.Request, v *view) error {
	return a.renderChat(w, r, v, http.StatusOK, chatData{})
}

func (a *app) chatConversation(w http.ResponseWriter, r *http.Request, v *view) error {
	return a.renderChat(w, r, v, http.StatusOK, chatData{Current: &convView{ID: r.PathValue("id")}, Error: chatErrors[r.URL.Query().Get("error")]})
}

// renderChat fills d with the caller's list, models and (when d.Current
// names one) conversation, and renders it with status.
func (a *app) renderChat(w http.ResponseWriter, r *http.Request, v *view, status int, d chatData) error {
	ctx := r.Context()
	ce, err := a.svc.Conversations(ctx, v.User)
	if err != nil {
		return err
	}
	res, listTag := ce.Result, ce.ETag
	list, err := decodeEntry[service.ConversationList](a.decode, "conversations", &ce)
	if err != nil {
		return err
	}
	running, statusTag, err := a.svc.RunningModels(ctx, v.User)
	if err != nil {
		return err
	}
	models, modelsTag, err := a.visibleModels(ctx, v.User)
	if err != nil {
		return err
	}
	names := make(map[string]string, len(models.Models))
	for _, m := range models.Models {
		names[m.ID] = m.Name
	}
	d.Models = running
	if d.Form.ModelID == "" && len(running) > 0 {
		d.Form.ModelID = running[0].ID
	}
	key := ""
	if d.Current != nil {
		if err := a.fillConversation(r, v, d.Current, names, running); err != nil {
			return err
		}
	} else if status == http.StatusOK {
		key = pageKey("chat", v, listTag, statusTag, modelsTag)
	}
	for _, c := range list.Conversations {
		d.Conversations = append(d.Conversations, convRow{ID: c.ID, Title: convTitle(c.Title), Model: modelName(names, c.ModelID),
			Updated: fmtTime(c.UpdatedAt), Current: d.Current != nil && d.Current.ID == c.ID})
	}
	setXCache(w, res)
	v.Title, v.Nav, v.Data = "Chat", "chat", d
	if d.Current != nil {
		v.Title = d.Current.Title + " · Chat"
		w.Header().Set("Cache-Control", "no-store")
	}
	a.renderCached(w, r, status, "chat", "layout", v, key)
	return nil
}

func (a *app) fillConversation(r *http.Request, v *view, cv *convView, names map[string]string, running []modellab.Model) error {
	c, err := a.svc.GetConversation(r.Context(), v.User, cv.ID)
	if err != nil {
		return err
	}
	cv.Title, cv.ModelName = convTitle(c.Title), modelName(names, c.ModelID)
	for _, m := range running {
		cv.Running = cv.Running || m.ID == c.ModelID
	}
	for _, m := range c.Messages {
		cv.Messages = append(cv.Messages, msgRow{ID: m.ID, Role: m.Role, Content: m.Content, Status: m.Status, Time: fmtTime(m.CreatedAt)})
	}
	return nil
}

func convTitle(t string) string {
	if t == "" {
		return "New conversation"
	}
	return t
}

func modelName(names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	return "a model that is gone"
}

func (a *app) createConversation(w http.ResponseWriter, r *http.Request, v *view) error {
	f := chatForm{ModelID: r.PostForm.Get("model_id"), Title: r.PostForm.Get("title")}
	c, err := a.svc.CreateConversation(r.Context(), v.User, service.CreateConversationInput{ModelID: f.ModelID, Title: f.Title})
	if err != nil {
		if modellab.ErrorCode(err) != modellab.EINVALID {
			return err
		}
		return a.renderChat(w, r, v, http.StatusBadRequest, chatData{Form: f, Error: sentence(modellab.ErrorMessage(err))})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/chat/"+url.PathEscape(c.ID), http.StatusSeeOther)
	return nil
}

func (a *app) deleteConversation(w http.ResponseWriter, r *http.Request, v *view) error {
	if err := a.svc.DeleteConversation(r.Context(), v.User, r.PathValue("id")); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/chat", http.StatusSeeOther)
	return nil
}

// sendMessage answers the script with the reply's event stream, and a
// form without script with a redirect once the reply is over.
func (a *app) sendMessage(w http.ResponseWriter, r *http.Request, v *view) error {
	id := r.PathValue("id")
	in := service.SendMessageInput{ConversationID: id, Content: r.PostForm.Get("content")}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		a.streamMessage(w, r, v, in)
		return nil
	}
	// The reply may take longer than the server's timeouts allow a
	// request; it is written at the end, as a redirect.
	transport.LiftDeadlines(w)
	in.Sink = discardSink{}
	msg, err := a.svc.SendMessage(r.Context(), v.User, in)
	if msg.ID == "" && err != nil {
		code := modellab.ErrorCode(err)
		if code != modellab.EINVALID && code != modellab.EUNAVAILABLE {
			return err
		}
		d := chatData{Current: &convView{ID: id}, Form: chatForm{Content: in.Content}, Error: sentence(modellab.ErrorMessage(err))}
		return a.renderChat(w, r, v, transport.StatusOf(err), d)
	}
	target := "/chat/" + url.PathEscape(id)
	if err != nil {
		code, _ := transport.Classify(err)
		target += "?error=" + url.QueryEscape(code)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target+"#m-"+msg.ID, http.StatusSeeOther)
	return nil
}

// streamMessage is the script's POST: the events of the JSON API's message
// stream, or the JSON error of a failure before it began.
func (a *app) streamMessage(w http.ResponseWriter, r *http.Request, v *view, in service.SendMessageInput) {
	sink := &pageSink{w: w}
	in.Sink = sink
	msg, err := a.svc.SendMessage(r.Context(), v.User, in)
	if transport.ClientGone(r) {
		return
	}
	if msg.ID == "" {
		code, status := transport.Classify(err)
		if status >= 500 {
			a.log.WarnContext(r.Context(), "chat message failed", "code", code, "err", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(service.ChatError{Error: service.ChatErrorBody{Code: code, Message: modellab.ErrorMessage(err)}})
		return
	}
	if err != nil {
		code, _ := transport.Classify(err)
		a.log.WarnContext(r.Context(), "chat reply cut short", "code", code, "err", err)
		_ = sink.es.JSON(service.ChatError{Error: service.ChatErrorBody{Code: code, Message: modellab.ErrorMessage(err)}})
	}
	_ = sink.es.JSON(service.ChatDone{Done: true, Message: msg})
}

// pageSink streams a reply to the page's script.
type pageSink struct {
	w  http.ResponseWriter
	es *transport.EventStream
}

func (k *pageSink) Start() error {
	securityHeaders(k.w.Header())
	k.es = transport.StartEventStream(k.w)
	return nil
}

func (k *pageSink) Delta(text string) error { return k.es.JSON(service.ChatDelta{Delta: text}) }

// discardSink is the form without script: the reply is read from the
// database once it is over.
type discardSink struct{}

func (discardSink) Start() error       { return nil }
func (discardSink) Delta(string) error { return nil }
