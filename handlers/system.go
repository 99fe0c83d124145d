package handlers

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// HealthOutput answers liveness and readiness probes.
type HealthOutput struct {
	Body struct {
		Status string `json:"status" enum:"ok" doc:"Always ok when the status code is 200"`
	}
}

func (h *handler) registerSystem(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "healthz",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness probe",
		Description: "Answers 200 while the process serves HTTP.",
		Tags:        []string{TagSystem},
		Security:    public,
	}, func(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
		out := &HealthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "readyz",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness probe",
		Description: "Answers 200 when the database is reachable and every migration is applied, 503 otherwise.",
		Tags:        []string{TagSystem},
		Errors:      []int{http.StatusServiceUnavailable},
		Security:    public,
	}, func(ctx context.Context, _ *struct{}) (*HealthOutput, error) {
		if err := h.d.Store.Ready(ctx); err != nil {
			h.log().WarnContext(ctx, "not ready", "err", err)
			return nil, &Problem{Status: http.StatusServiceUnavailable, Title: http.StatusText(503), Detail: "database not ready", Code: "not_ready"}
		}
		out := &HealthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})
}
