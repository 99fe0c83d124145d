package handlers

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/egress"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// TagPush groups the Web Push operations.
const TagPush = "push"

// PushDeps are what the push operations need; nil (or an empty public key)
// means push is off on this server.
type PushDeps struct {
	// VAPIDPublicKey is the server's application-server key (base64url,
	// uncompressed P-256 point).
	VAPIDPublicKey string
	// Policy checks subscription endpoints (no SSRF).
	Policy *egress.Policy
}

// VAPIDKeyOutput is the server's VAPID public key.
type VAPIDKeyOutput struct {
	Body struct {
		PublicKey string `json:"public_key" doc:"The server's VAPID public key (RFC 8292): an uncompressed P-256 point, base64url without padding. Pass it as applicationServerKey to pushManager.subscribe." example:"BDd3_hVL9fZi9Ybo2UUzA284WG5FZR30_95YeZJsiApwXKpNcF1rRPF3foIiBHXRdJI2Qhumhf6_LFTeZaNndIo"`
	}
}

// PushKeys are a subscription's RFC 8291 keys, as PushSubscription.toJSON()
// gives them.
type PushKeys struct {
	P256dh string `json:"p256dh" minLength:"80" maxLength:"100" doc:"The device's P-256 public key (uncompressed point), base64url"`
	Auth   string `json:"auth" minLength:"16" maxLength:"32" doc:"The device's 16-byte authentication secret, base64url"`
}

// PutPushInput is the browser's PushSubscription JSON.
type PutPushInput struct {
	Body struct {
		Endpoint string `json:"endpoint" minLength:"9" maxLength:"2048" doc:"The push service URL the browser (or UnifiedPush distributor) gave. Only https:// URLs on public addresses are accepted, unless the operator allowed the host (--push-allow-hosts)." example:"https://updates.push.services.mozilla.com/wpush/v2/gAAAAABh"`
		// ExpirationTime is accepted so the browser's JSON can be sent as is.
		ExpirationTime *float64 `json:"expirationTime,omitempty" required:"false" nullable:"true" doc:"As PushSubscription.toJSON() gives it; ignored"`
		Keys           PushKeys `json:"keys"`
	}
}

// PushSubscriptionInfo is the device's subscription (its keys are not
// echoed).
type PushSubscriptionInfo struct {
	Endpoint  string    `json:"endpoint" doc:"The push service URL pushes go to"`
	CreatedAt time.Time `json:"created_at" doc:"When the device first subscribed"`
	UpdatedAt time.Time `json:"updated_at" doc:"When the subscription last changed"`
}

// PushSubscriptionOutput answers with the device's subscription.
type PushSubscriptionOutput struct {
	Body PushSubscriptionInfo
}

var errPushOff = &Problem{Status: http.StatusNotFound, Title: "Not Found", Detail: "push notifications are turned off on this server", Code: "push_disabled"}

func (h *handler) pushOn() bool { return h.d.Push != nil && h.d.Push.VAPIDPublicKey != "" }

func (h *handler) registerPush(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "getVapidPublicKey",
		Method:      http.MethodGet,
		Path:        "/v1/push/vapid-public-key",
		Summary:     "The server's VAPID public key",
		Description: "The application-server key a device subscribes with (pushManager.subscribe({applicationServerKey})). " +
			"404 `push_disabled` when the server runs with --push=false.",
		Tags:     []string{TagPush},
		Security: public,
		Errors:   []int{http.StatusNotFound},
	}, func(ctx context.Context, _ *struct{}) (*VAPIDKeyOutput, error) {
		if !h.pushOn() {
			return nil, errPushOff
		}
		out := &VAPIDKeyOutput{}
		out.Body.PublicKey = h.d.Push.VAPIDPublicKey
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "putMyDevicePush",
		Method:      http.MethodPut,
		Path:        "/v1/me/devices/current/push",
		Summary:     "Subscribe this device to push",
		Description: "Stores this device's Web Push subscription (one per device; a new one replaces the old). " +
			"While the device has no open stream, each event for it sends a push: an encrypted, content-free " +
			"wake-up (`{\"t\":\"wake\"}`, no group, sender or size), coalesced to at most one every few seconds. " +
			"The endpoint must be https:// on a public address (422 `push_endpoint_refused` otherwise) unless the operator allowed its host.",
		Tags:     []string{TagPush},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *PutPushInput) (*PushSubscriptionOutput, error) {
		if !h.pushOn() {
			return nil, errPushOff
		}
		p := PrincipalFrom(ctx)
		endpoint := strings.TrimSpace(in.Body.Endpoint)
		if _, err := h.d.Push.Policy.CheckURL(ctx, endpoint); err != nil {
			detail := err.Error()
			if !egress.IsRefused(err) {
				detail = "the endpoint's host does not resolve"
			}
			return nil, h.fail(ctx, models.Errorf(models.EINVALID, "push_endpoint_refused", "push endpoint refused: %s", detail))
		}
		if err := checkPushKeys(in.Body.Keys); err != nil {
			return nil, h.fail(ctx, err)
		}
		sub, err := h.d.Store.SavePushSubscription(ctx, store.PushSubscription{DeviceID: p.DeviceID, Endpoint: endpoint,
			P256dh: in.Body.Keys.P256dh, Auth: in.Body.Keys.Auth})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &PushSubscriptionOutput{Body: PushSubscriptionInfo{Endpoint: sub.Endpoint, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt}}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "getMyDevicePush",
		Method:      http.MethodGet,
		Path:        "/v1/me/devices/current/push",
		Summary:     "This device's push subscription",
		Description: "404 `no_push_subscription` when the device has none.",
		Tags:        []string{TagPush},
		Security:    bearer,
		Errors:      []int{http.StatusUnauthorized, http.StatusNotFound},
	}, func(ctx context.Context, _ *struct{}) (*PushSubscriptionOutput, error) {
		p := PrincipalFrom(ctx)
		sub, err := h.d.Store.PushSubscriptionOf(ctx, p.DeviceID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &PushSubscriptionOutput{Body: PushSubscriptionInfo{Endpoint: sub.Endpoint, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt}}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID:   "deleteMyDevicePush",
		Method:        http.MethodDelete,
		Path:          "/v1/me/devices/current/push",
		Summary:       "Stop push for this device",
		Description:   "Deletes this device's push subscription and any push waiting for it. Succeeds when there was none.",
		Tags:          []string{TagPush},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized},
	}, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		if _, err := h.d.Store.DeletePushSubscription(ctx, p.DeviceID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
}

// checkPushKeys checks the RFC 8291 keys: p256dh a P-256 public key, auth
// 16 bytes.
func checkPushKeys(k PushKeys) error {
	p, err := decodeB64URL(k.P256dh)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(p)
	}
	if err != nil {
		return models.Errorf(models.EINVALID, "bad_push_keys", "keys.p256dh must be an uncompressed P-256 public key in base64url")
	}
	a, err := decodeB64URL(k.Auth)
	if err != nil || len(a) != 16 {
		return models.Errorf(models.EINVALID, "bad_push_keys", "keys.auth must be 16 bytes in base64url")
	}
	return nil
}

// decodeB64URL accepts base64url with or without padding (browsers give
// it without; some libraries pad).
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
