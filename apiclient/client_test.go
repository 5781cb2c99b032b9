package apiclient_test

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/modellab/modellab/apiclient"
)

// TestClientCoversDocument catches a client left behind by the document
// without the code generator at hand: every operation of web/openapi.json
// outside the pages has its method on ClientWithResponses, and the client
// has no method for an operation the document no longer has. (Whether the
// committed code is exactly what the generator makes is checked by
// `make check-apiclient`.)
func TestClientCoversDocument(t *testing.T) {
	b, err := os.ReadFile("../web/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				OperationID string   `json:"operationId"`
				Tags        []string `json:"tags"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
				continue
			}
			if !slices.Contains(op.Tags, "Pages") {
				want = append(want, strings.ToUpper(op.OperationID[:1])+op.OperationID[1:]+"WithResponse")
			}
		}
	}
	var got []string
	typ := reflect.TypeFor[*apiclient.ClientWithResponses]()
	for i := range typ.NumMethod() {
		if name := typ.Method(i).Name; strings.HasSuffix(name, "WithResponse") && !strings.HasSuffix(name, "WithBodyWithResponse") {
			got = append(got, name)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("ClientWithResponses methods:\n  %s\nwant (from the document):\n  %s\nrun `go generate ./apiclient/`",
			strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
