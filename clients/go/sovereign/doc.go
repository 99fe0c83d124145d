// Package sovereign is the Go SDK for the Sovereign API: a self-hosted,
// end-to-end encrypted messaging server (MLS, RFC 9420; passkeys only).
//
// client.gen.go is generated from openapi.yaml by oapi-codegen v2.8.2
// (`make clients` in the Sovereign repository, or `go generate`); do not
// edit it. It gives one method per API operation on ClientWithResponses.
// The hand-written layer adds what Go programs need around it:
//
//   - Session: a signed-in device (server URL and session token) with every
//     generated method, plus Send and Commit with automatic idempotency
//     keys and retries that never store a message twice;
//   - Stream: the device's feed over Server-Sent Events, reconnecting with
//     Last-Event-ID, falling back to long-poll, delivering typed events
//     and acknowledging what the program has processed;
//   - APIError: a problem answer (RFC 9457) with its machine-readable code.
//
// Passkey ceremonies for tests and bots are in the sibling package passkey.
//
//	s, err := sovereign.NewSession("https://chat.example.org", token)
//	me, err := s.GetMeWithResponse(ctx)
//	receipt, err := s.Send(ctx, groupID, mlsMessage)
//	st := s.Stream(ctx, sovereign.StreamOptions{After: cursor, AutoAck: true})
//	defer st.Close()
//	for {
//		ev, err := st.Next(ctx)
//		...
//	}
//
// Binary fields ([]byte) travel as base64 in JSON, as the spec says. There
// is no MLS here: bring MLS bytes from an MLS library.
package sovereign

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../../../openapi.yaml
