// Package apiclient is a Go client of the modellab JSON API, generated with
// oapi-codegen from the API document the server publishes (web/openapi.json,
// served at /openapi.json). client.gen.go is generated: do not edit it;
// change the document and run `go generate ./apiclient/` instead.
//
// Each operation of the document is a method of ClientWithResponses named
// after its operationId (ListModelsWithResponse, GetModelWithResponse, …).
// Its result holds the decoded body of each documented status: JSON200,
// JSON201, … for success, and JSON400, JSON401, JSON404, … of type Error for
// the error answers, whose Error.Code is one of the contract's codes
// (ErrorErrorCodeNotFound, ErrorErrorCodeUnauthorized, …).
//
//	c, err := apiclient.NewClientWithResponses("http://localhost:8080",
//		apiclient.WithRequestEditorFn(apiclient.BearerToken(token)))
//	res, err := c.GetModelWithResponse(ctx, id)
//	switch {
//	case err != nil: // transport error
//	case res.JSON200 != nil: // the model
//	case res.JSON404 != nil: // res.JSON404.Error.Code == apiclient.ErrorErrorCodeNotFound
//	}
//
// The pages and their forms are left out (operations tagged Pages).
package apiclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../web/openapi.json

import (
	"context"
	"net/http"
)

// BearerToken returns a request editor that authenticates every request
// with token (an API token, or the admin token).
func BearerToken(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}
