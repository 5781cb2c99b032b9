package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"

	"github.com/modellab/modellab/apiclient"
)

// TestGeneratedClient drives a real `modellab serve` through the client
// generated from the API document: what a user of the document gets is a
// client that talks to this server, success and errors alike.
func TestGeneratedClient(t *testing.T) {
	const admin = "e2e-admin-token-0123456789"
	p := startServe(t, map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "client.db"),
		"ADMIN_TOKEN":         admin,
		"DISABLE_REDIS_CACHE": "true",
		"DB_TIMEOUT_MS":       "30000", // slow statements under -race are not what this tests
	}, "--demo=false")
	ctx := context.Background()
	as := func(token string) *apiclient.ClientWithResponses {
		t.Helper()
		c, err := apiclient.NewClientWithResponses(p.url, apiclient.WithRequestEditorFn(apiclient.BearerToken(token)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	created, err := as(admin).CreateUserWithResponse(ctx, apiclient.CreateUserRequest{Name: "carol"})
	if err != nil || created.JSON201 == nil {
		t.Fatalf("createUser: %v, status %d %s", err, created.StatusCode(), created.Body)
	}
	if u := created.JSON201.User; u.Name != "carol" || u.Admin || created.JSON201.Token == "" {
		t.Fatalf("createUser: %+v", created.JSON201)
	}
	carolID, carol := created.JSON201.User.ID, as(created.JSON201.Token)

	m := createPrivateModel(t, carol, carolID)
	listed, err := carol.ListModelsWithResponse(ctx, nil)
	if err != nil || listed.JSON200 == nil {
		t.Fatalf("listModels: %v, status %d %s", err, listed.StatusCode(), listed.Body)
	}
	if !slices.ContainsFunc(listed.JSON200.Models, func(x apiclient.Model) bool { return x.ID == m.ID }) {
		t.Errorf("listModels as carol: %s missing from %s", m.ID, listed.Body)
	}

	if _, err := carol.CreateModelWithResponse(ctx, apiclient.CreateModelRequest{Name: "another-bot", Provider: "local"}); err != nil {
		t.Fatal(err)
	}
	if listed, err = carol.ListModelsWithResponse(ctx, nil); err != nil || len(listed.JSON200.Models) < 2 {
		t.Fatalf("listModels after a second model: %v %s", err, listed.Body)
	}
	checkPaging(t, carol, listed.JSON200.Models)
	checkServerStatus(t, carol, m)
	checkAnalytics(t, carol, m)
	checkTypedErrors(t, carol, as("mlk_not-a-token"))
}

// checkPaging walks the list a model at a time through the client's
// limit and page_token parameters and gets the whole list back.
func checkPaging(t *testing.T, c *apiclient.ClientWithResponses, whole []apiclient.Model) {
	t.Helper()
	ctx := context.Background()
	one := 1
	var got []string
	params := &apiclient.ListModelsParams{Limit: &one}
	for pages := 0; ; pages++ {
		if pages > len(whole) {
			t.Fatalf("listModels pages: more pages than models")
		}
		res, err := c.ListModelsWithResponse(ctx, params)
		if err != nil || res.JSON200 == nil {
			t.Fatalf("listModels page: %v, status %d %s", err, res.StatusCode(), res.Body)
		}
		for _, m := range res.JSON200.Models {
			got = append(got, m.ID)
		}
		if res.JSON200.NextPageToken == nil {
			break
		}
		params.PageToken = res.JSON200.NextPageToken
	}
	var want []string
	for _, m := range whole {
		want = append(want, m.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listModels pages: %v, want %v", got, want)
	}
	bad := "not-a-token"
	res, err := c.ListModelsWithResponse(ctx, &apiclient.ListModelsParams{Limit: &one, PageToken: &bad})
	if err != nil || res.JSON400 == nil || res.JSON400.Error.Code != apiclient.ErrorErrorCodeInvalidArgument {
		t.Errorf("listModels with a bad page_token: %v, status %d %s", err, res.StatusCode(), res.Body)
	}
}

func createPrivateModel(t *testing.T, c *apiclient.ClientWithResponses, ownerID string) apiclient.Model {
	t.Helper()
	ctx := context.Background()
	res, err := c.CreateModelWithResponse(ctx, apiclient.CreateModelRequest{
		Name: "support-bot", Provider: "meta", ContextLength: nullable.NewNullableWithValue[int64](8192),
	})
	if err != nil || res.JSON201 == nil {
		t.Fatalf("createModel: %v, status %d %s", err, res.StatusCode(), res.Body)
	}
	m := *res.JSON201
	if owner, _ := m.OwnerID.Get(); m.Visibility != apiclient.ModelVisibilityPrivate || owner != ownerID {
		t.Fatalf("createModel: visibility %q owner %q, want private and %q", m.Visibility, owner, ownerID)
	}
	// An explicit null clears a field: the reason the client uses
	// nullable.Nullable rather than pointers.
	upd, err := c.UpdateModelWithResponse(ctx, m.ID, apiclient.ModelPatch{ContextLength: nullable.NewNullNullable[int64]()})
	if err != nil || upd.JSON200 == nil {
		t.Fatalf("updateModel: %v, status %d %s", err, upd.StatusCode(), upd.Body)
	}
	if !upd.JSON200.ContextLength.IsNull() {
		t.Errorf("updateModel with context_length null: %s", upd.Body)
	}
	return *upd.JSON200
}

func checkServerStatus(t *testing.T, c *apiclient.ClientWithResponses, m apiclient.Model) {
	t.Helper()
	ctx := context.Background()
	running := apiclient.CreateServerRequestStatusRunning
	sv, err := c.CreateServerWithResponse(ctx, apiclient.CreateServerRequest{
		Name: "gpu-node-1", ModelID: nullable.NewNullableWithValue(m.ID), GPU: new("A100"), Status: &running,
	})
	if err != nil || sv.JSON201 == nil {
		t.Fatalf("createServer: %v, status %d %s", err, sv.StatusCode(), sv.Body)
	}
	st, err := c.GetServersStatusWithResponse(ctx, nil)
	if err != nil || st.JSON200 == nil {
		t.Fatalf("getServersStatus: %v, status %d %s", err, st.StatusCode(), st.Body)
	}
	got := st.JSON200
	if len(got.Servers) != 1 || got.Servers[0].ID != sv.JSON201.ID {
		t.Fatalf("getServersStatus: %s, want the one server %s", st.Body, sv.JSON201.ID)
	}
	if model, err := got.Servers[0].Model.Get(); err != nil || model.ID != m.ID {
		t.Errorf("getServersStatus: embedded model %+v (%v), want %s", model, err, m.ID)
	}
	if s := got.Summary; s.Total != 1 || s.Running != 1 {
		t.Errorf("getServersStatus: summary %+v, want total 1, running 1", s)
	}
}

func checkAnalytics(t *testing.T, c *apiclient.ClientWithResponses, m apiclient.Model) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	in, err := c.IngestEventsWithResponse(ctx, apiclient.EventsRequest{Events: []apiclient.Event{
		{ModelID: m.ID, Timestamp: new(now.Add(-30 * time.Minute)), InputTokens: new(int64(100)), OutputTokens: new(int64(250)),
			LatencyMs: new(120.5), Status: apiclient.EventStatusOk, CostUSD: nullable.NewNullableWithValue(0.002)},
		{ModelID: m.ID, InputTokens: new(int64(10)), OutputTokens: new(int64(0)), LatencyMs: new(80.0), Status: apiclient.EventStatusError},
	}})
	if err != nil || in.JSON202 == nil {
		t.Fatalf("ingestEvents: %v, status %d %s", err, in.StatusCode(), in.Body)
	}
	if in.JSON202.Accepted != 2 {
		t.Errorf("ingestEvents: accepted %d, want 2", in.JSON202.Accepted)
	}
	hour := apiclient.GetAnalyticsParamsIntervalHour
	res, err := c.GetAnalyticsWithResponse(ctx, &apiclient.GetAnalyticsParams{
		From: new(now.Add(-2 * time.Hour).Format(time.RFC3339)), To: new(now.Add(time.Hour).Format(time.RFC3339)), Interval: &hour,
	})
	if err != nil || res.JSON200 == nil {
		t.Fatalf("getAnalytics: %v, status %d %s", err, res.StatusCode(), res.Body)
	}
	a := res.JSON200
	if a.Totals.Requests != 2 || a.Totals.Errors != 1 || a.Totals.InputTokens != 110 || a.Totals.OutputTokens != 250 {
		t.Errorf("getAnalytics: totals %+v, want 2 requests, 1 error, 110 in, 250 out", a.Totals)
	}
	if len(a.ByModel) != 1 || a.ByModel[0].ModelID != m.ID || a.ByModel[0].ModelName != m.Name {
		t.Errorf("getAnalytics: by_model %+v, want one row for %s", a.ByModel, m.ID)
	}
	if a.Interval != apiclient.AnalyticsDataIntervalHour {
		t.Errorf("getAnalytics: interval %q, want hour", a.Interval)
	}
}

// checkTypedErrors: the error answers decode into the Error type of the
// document, with the contract's code.
func checkTypedErrors(t *testing.T, c, badToken *apiclient.ClientWithResponses) {
	t.Helper()
	ctx := context.Background()
	nf, err := c.GetModelWithResponse(ctx, "mdl_nope0000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if nf.StatusCode() != 404 || nf.JSON404 == nil || nf.JSON200 != nil {
		t.Fatalf("getModel of an unknown id: status %d %s, want a decoded 404", nf.StatusCode(), nf.Body)
	}
	if got := nf.JSON404.Error.Code; got != apiclient.ErrorErrorCodeNotFound || nf.JSON404.Error.Message == "" {
		t.Errorf("getModel of an unknown id: %+v, want code not_found and a message", nf.JSON404.Error)
	}

	un, err := badToken.GetServersStatusWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if un.StatusCode() != 401 || un.JSON401 == nil || un.JSON200 != nil {
		t.Fatalf("getServersStatus with a bad token: status %d %s, want a decoded 401", un.StatusCode(), un.Body)
	}
	if got := un.JSON401.Error.Code; got != apiclient.ErrorErrorCodeUnauthorized {
		t.Errorf("getServersStatus with a bad token: code %q, want unauthorized", got)
	}
}
