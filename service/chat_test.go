package service

import (
	"reflect"
	"testing"

	"github.com/modellab/modellab"
)

func TestBuildRoutes(t *testing.T) {
	owner := "usr_a"
	global := &modellab.Model{ID: "mdl_g", Name: "shared", Visibility: modellab.VisibilityGlobal}
	mine := &modellab.Model{ID: "mdl_m", Name: "shared", Visibility: modellab.VisibilityPrivate, OwnerID: &owner, BaseModel: "llama3.2"}
	other := &modellab.Model{ID: "mdl_o", Name: "other", Visibility: modellab.VisibilityPrivate, OwnerID: &owner}
	row := func(status, endpoint string, m *modellab.Model) ServerWithModel {
		return ServerWithModel{Server: modellab.Server{Status: status, Endpoint: endpoint}, Model: m}
	}
	st := &ServerStatus{Servers: []ServerWithModel{
		row("running", "http://b/v1", global),
		row("running", " http://a/v1 ", global),
		row("running", "http://a/v1", global), // the same endpoint twice
		row("running", "http://m/v1", mine),
		row("stopped", "http://x/v1", other), // not running
		row("running", "", other),            // nowhere to send a request
		row("running", "http://y/v1", nil),   // a model the caller cannot see
	}}
	rs := buildRoutes(st)
	if got := rs.byID["mdl_g"]; got == nil || !reflect.DeepEqual(got.endpoints, []string{"http://a/v1", "http://b/v1"}) {
		t.Errorf("global route = %+v", got)
	}
	if r, ok := rs.find("shared"); !ok || r.model.ID != "mdl_m" || r.upstreamModel() != "llama3.2" {
		t.Errorf(`find("shared") = %+v, want the private model, served as its base model`, r)
	}
	if r, ok := rs.find("mdl_g"); !ok || r.upstreamModel() != "shared" {
		t.Errorf(`find("mdl_g") = %+v, want the global model, served as its name`, r)
	}
	if _, ok := rs.find("other"); ok {
		t.Errorf("a model with no running server with an endpoint has a route")
	}
	if len(rs.sorted) != 2 {
		t.Errorf("%d routes, want 2", len(rs.sorted))
	}
}
