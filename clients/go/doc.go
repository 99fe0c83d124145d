// Package client is the Go SDK for the Sovereign API.
//
// client.gen.go is generated from ../../openapi.yaml by oapi-codegen v2.8.2
// (`make clients`, or `go generate ./clients/go`); do not edit it. `make
// test` fails when it differs from what the spec produces. stream.go adds
// what OpenAPI cannot describe well: reading the Server-Sent Events feed.
//
// Use it like this:
//
//	c, err := client.NewClientWithResponses("https://chat.example.org",
//		client.WithRequestEditorFn(client.Bearer(token)))
//	me, err := c.GetMeWithResponse(ctx)
//
// Binary fields ([]byte) travel as base64 in JSON, as the spec says.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../../openapi.yaml
