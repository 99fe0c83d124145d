package handlers_test

// problem is the RFC 9457 body as tests read it.
type problem struct {
	Status       int     `json:"status"`
	Code         string  `json:"code"`
	Detail       string  `json:"detail"`
	CurrentEpoch *uint64 `json:"current_epoch"`
	Index        *int    `json:"index"`
	RetryAfter   int     `json:"retry_after"`
}
