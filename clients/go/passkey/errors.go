package passkey

import (
	"bytes"
	"io"
	"net/http"

	"github.com/sovereign-im/sovereign/clients/go/sovereign"
)

// answerError turns a non-success answer into a *sovereign.APIError.
func answerError(resp *http.Response, body []byte) error {
	r := *resp
	r.Body = io.NopCloser(bytes.NewReader(body))
	return sovereign.NewAPIError(&r)
}
