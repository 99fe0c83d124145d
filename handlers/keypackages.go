package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/ratelimit"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
)

// TagKeyPackages groups the key-package directory.
const TagKeyPackages = "key-packages"

// uploadMaxBody fits a full batch of the largest key packages in base64.
const uploadMaxBody = store.MaxKeyPackagesPerUpload*(store.MaxKeyPackageBytes*4/3+8) + 4096

// KeyPackageUploadInput is a batch of key packages of the caller's device.
type KeyPackageUploadInput struct {
	Body struct {
		KeyPackages     [][]byte `json:"key_packages" minItems:"1" maxItems:"100" doc:"MLSMessage(key_package) encodings (RFC 9420 §6, §10), base64. Each at most 16384 bytes."`
		LastResortIndex *int     `json:"last_resort_index,omitempty" minimum:"0" maximum:"99" doc:"Index in key_packages of the device's new last-resort package for its cipher suite. It replaces the previous one, is handed out only when no normal package is left, and is never deleted by a claim."`
	}
}

// KeyPackageSuiteCount is a device's stock for one cipher suite.
type KeyPackageSuiteCount struct {
	CipherSuite uint16 `json:"cipher_suite" minimum:"1" example:"1" doc:"RFC 9420 cipher suite"`
	Normal      int    `json:"normal" minimum:"0" doc:"Unexpired single-use packages left"`
	LastResort  bool   `json:"last_resort" doc:"Whether an unexpired last-resort package is stored"`
	Low         bool   `json:"low" doc:"normal is below low_water: upload more"`
}

// KeyPackageCountsBody is a device's stock of claimable key packages.
type KeyPackageCountsBody struct {
	Suites   []KeyPackageSuiteCount `json:"suites" doc:"One entry per cipher suite the device holds packages for"`
	LowWater int                    `json:"low_water" minimum:"0" doc:"The server's low-water mark (--key-package-low-water)"`
	Low      bool                   `json:"low" doc:"True when the device holds no package at all or any suite is low"`
}

// KeyPackageCountsOutput answers upload and count.
type KeyPackageCountsOutput struct {
	Body KeyPackageCountsBody
}

// KeyPackageClaimInput claims key packages of a user.
type KeyPackageClaimInput struct {
	User string `path:"user" minLength:"1" maxLength:"64" doc:"The target user's id (UUID) or username"`
	Body struct {
		CipherSuite uint16 `json:"cipher_suite" minimum:"1" maximum:"7" example:"1" doc:"RFC 9420 cipher suite of the group being built (not 4 or 6: Ed448 packages are not accepted)"`
	}
}

// ClaimedKeyPackage is one device's package in a claim.
type ClaimedKeyPackage struct {
	DeviceID   string `json:"device_id" format:"uuid" doc:"The device the package belongs to"`
	Ref        []byte `json:"ref" doc:"Its KeyPackageRef (RFC 9420 §5.2), base64: a Welcome addresses the device by it"`
	KeyPackage []byte `json:"key_package" doc:"MLSMessage(key_package) as uploaded, base64"`
	LastResort bool   `json:"last_resort" doc:"The device had no normal package left; this is its last-resort package, which others may also receive"`
}

// KeyPackageClaimOutput is the result of a claim.
type KeyPackageClaimOutput struct {
	Body struct {
		UserID         string              `json:"user_id" format:"uuid"`
		CipherSuite    uint16              `json:"cipher_suite" minimum:"1"`
		KeyPackages    []ClaimedKeyPackage `json:"key_packages" doc:"One package per active device of the user that has one (never the caller's own device)"`
		MissingDevices []string            `json:"missing_devices" doc:"Active devices of the user with no package for this suite: they cannot be added now"`
	}
}

func (h *handler) registerKeyPackages(api huma.API) {
	lim := h.d.Config.Limits
	byDevice := ratelimit.New(lim.ClaimsPerMinute, lim.ClaimsPerMinute, h.now)
	byTarget := ratelimit.New(lim.ClaimsPerTarget, lim.ClaimsPerTarget, h.now)
	h.followSetting(func(v settings.Values) { byDevice.SetRate(v.ClaimsPerMinute, v.ClaimsPerMinute) })

	huma.Register(api, huma.Operation{
		OperationID:   "uploadKeyPackages",
		Method:        http.MethodPost,
		Path:          "/v1/key-packages",
		Summary:       "Upload key packages of this device",
		DefaultStatus: http.StatusCreated,
		Description: "Stores a batch of up to 100 MLS key packages for the calling device, all or none. " +
			"Each must be an `MLSMessage` (version mls10, wire format mls_key_package, no trailing bytes) whose KeyPackage:\n\n" +
			"- uses a cipher suite the server can verify: 1, 2, 3, 5 or 7 (the Ed448 suites 4 and 6 are refused);\n" +
			"- carries valid LeafNode and KeyPackage signatures;\n" +
			"- has a **BasicCredential whose identity is exactly the UTF-8 bytes `sovereign:device:<device-id>`** of the " +
			"uploading device (lower-case UUID, as returned at sign-in). X.509 credentials are not accepted yet;\n" +
			"- has a lifetime that is current (`not_before` at most 5 minutes ahead, `not_after` not passed) and spans at most " +
			"`--key-package-max-lifetime` (default 90 days);\n" +
			"- has a KeyPackageRef not seen before (in the batch, stored, or already claimed).\n\n" +
			"Any invalid package rejects the whole batch with 422; the problem's `index` names it and `code` says why " +
			"(`key_package_malformed`, `key_package_version`, `key_package_wire_format`, `key_package_trailing_data`, " +
			"`key_package_cipher_suite`, `key_package_signature`, `key_package_credential`, `key_package_identity`, " +
			"`key_package_expired`, `key_package_not_yet_valid`, `key_package_lifetime`, `key_package_too_large`, " +
			"`key_package_duplicate`). A device holds at most `--key-packages-per-device` normal packages (507 beyond). " +
			"The answer is the device's stock, as from the count operation.",
		Tags:         []string{TagKeyPackages},
		Security:     bearer,
		MaxBodyBytes: uploadMaxBody,
		Errors:       []int{http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *KeyPackageUploadInput) (*KeyPackageCountsOutput, error) {
		p := PrincipalFrom(ctx)
		lr := -1
		if in.Body.LastResortIndex != nil {
			lr = *in.Body.LastResortIndex
		}
		counts, err := h.d.Store.UploadKeyPackages(ctx, store.UploadKeyPackagesInput{
			DeviceID:        p.DeviceID,
			Packages:        in.Body.KeyPackages,
			LastResortIndex: lr,
			MaxLifetime:     lim.KeyPackageMaxLifetime,
			MaxPerDevice:    lim.KeyPackagesPerDevice,
			LowWater:        lim.KeyPackageLowWater,
		})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return countsOutput(counts), nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "countKeyPackages",
		Method:      http.MethodGet,
		Path:        "/v1/key-packages/count",
		Summary:     "Count this device's key packages",
		Description: "The calling device's unexpired key packages per cipher suite, whether a last-resort package is stored, " +
			"and `low` when fewer normal packages than the server's low-water mark remain: upload more then.",
		Tags:     []string{TagKeyPackages},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized},
	}, func(ctx context.Context, _ *struct{}) (*KeyPackageCountsOutput, error) {
		p := PrincipalFrom(ctx)
		counts, err := h.d.Store.KeyPackageCounts(ctx, p.DeviceID, lim.KeyPackageLowWater)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return countsOutput(counts), nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "claimKeyPackages",
		Method:      http.MethodPost,
		Path:        "/v1/users/{user}/key-packages/claim",
		Summary:     "Claim key packages of a user",
		Description: "Hands out one key package of the cipher suite for each active device of the user (never the caller's own " +
			"device: claim your own user to add your other devices). Each device's oldest normal package is chosen and deleted " +
			"in the same transaction, so no normal package is ever handed out twice; a device with none left gives its " +
			"last-resort package, which stays stored. Devices with no package for the suite are listed in `missing_devices`. " +
			"Every handed-out ref is recorded (claimer, ref, owner) to route the Welcome. Claims are rate-limited per calling " +
			"user, all its devices together (`--claims-per-minute`), and per calling user against each target user " +
			"(`--claims-per-target-per-minute`; each claimer has its own, so nobody can spend another's): 429 with `Retry-After`. " +
			"Unknown and disabled users are 404.",
		Tags:     []string{TagKeyPackages},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, func(ctx context.Context, in *KeyPackageClaimInput) (*KeyPackageClaimOutput, error) {
		p := PrincipalFrom(ctx)
		suite := in.Body.CipherSuite
		if !mls.SignatureSupported(suite) {
			return nil, h.fail(ctx, models.Errorf(models.EINVALID, "unsupported_cipher_suite",
				"cipher suite %s is not served: the server accepts key packages of suites 1, 2, 3, 5 and 7", mls.SuiteName(suite)))
		}
		// Both budgets are the claiming user's, never a device's: a user with
		// many devices has no more to spend than a user with one.
		if ok, wait := byDevice.Allow(p.UserID, 1); !ok {
			return nil, h.fail(ctx, rateLimited("claim_rate_limited", "too many key-package claims from your account", wait))
		}
		target, err := h.d.Store.ResolveClaimTarget(ctx, in.User)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		// Each claiming user has its own budget against each target, so no
		// claimer can spend the budget of the others and starve them.
		if ok, wait := byTarget.Allow(target+"\x00"+p.UserID, 1); !ok {
			return nil, h.fail(ctx, rateLimited("claim_target_rate_limited", "too many key-package claims against this user", wait))
		}
		claim, err := h.d.Store.ClaimKeyPackages(ctx, store.ClaimKeyPackagesInput{
			ClaimerDeviceID: p.DeviceID,
			TargetUserID:    target,
			CipherSuite:     suite,
			LowWater:        lim.KeyPackageLowWater,
		})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &KeyPackageClaimOutput{}
		out.Body.UserID = claim.UserID
		out.Body.CipherSuite = claim.CipherSuite
		out.Body.KeyPackages = make([]ClaimedKeyPackage, 0, len(claim.Packages))
		for _, kp := range claim.Packages {
			out.Body.KeyPackages = append(out.Body.KeyPackages, ClaimedKeyPackage{
				DeviceID: kp.DeviceID, Ref: kp.Ref, KeyPackage: kp.Data, LastResort: kp.LastResort,
			})
		}
		out.Body.MissingDevices = append(make([]string, 0, len(claim.MissingDevices)), claim.MissingDevices...)
		return out, nil
	})
}

func rateLimited(reason, msg string, wait time.Duration) error {
	e := models.Errorf(models.ERATELIMIT, reason, "%s; retry later", msg)
	e.RetryAfter = wait
	return e
}

func countsOutput(c *models.KeyPackageCounts) *KeyPackageCountsOutput {
	out := &KeyPackageCountsOutput{}
	out.Body.LowWater = c.LowWater
	out.Body.Low = c.Low
	out.Body.Suites = make([]KeyPackageSuiteCount, 0, len(c.Suites))
	for _, s := range c.Suites {
		out.Body.Suites = append(out.Body.Suites, KeyPackageSuiteCount{CipherSuite: s.CipherSuite, Normal: s.Normal, LastResort: s.LastResort, Low: s.Low})
	}
	return out
}
