// Package settings holds the run-time settings an admin can change without
// a restart. The configuration (flags, environment, file) gives each
// setting its default; an admin's override is stored in the database
// (table settings) and wins until it is reset. Live keeps the effective
// values in memory behind an atomic pointer, so a request reads them
// without a lock or a query, and tells subscribers (rate limiters) when
// they change.
//
// Which settings exist, and who reads them, is the Keys table below: every
// setting listed there takes effect at once, for the next request.
package settings

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
)

// Values are the effective settings.
type Values struct {
	RegistrationMode  string `json:"registration_mode" enum:"invite,open" doc:"invite: registration needs an invite code; open: anyone may register"`
	MessagesPerMinute int    `json:"messages_per_minute" doc:"Messages one user may send per minute"`
	AuthPerMinute     int    `json:"auth_per_minute" doc:"Passkey ceremony requests per client IP per minute"`
	AuthBurst         int    `json:"auth_burst" doc:"Passkey ceremony requests per client IP in a burst"`
	ClaimsPerMinute   int    `json:"claims_per_minute" doc:"Key-package claims per claiming user per minute, all its devices together"`
	Directory         string `json:"directory" enum:"exact,search" doc:"exact: users are found by exact username only; search: signed-in users may also search usernames by prefix"`
	GroupsPerUser     int    `json:"groups_per_user" doc:"Groups a user's devices may be members of when it creates another"`
	GroupsPerHour     int    `json:"groups_per_hour" doc:"Groups one user may create per hour, all its devices together"`
	DevicesPerUser    int    `json:"devices_per_user" doc:"Devices (not revoked) one user may have; another sign-in is refused until one is revoked"`
}

// Overrides are the values an admin set; nil fields follow the
// configuration.
type Overrides struct {
	RegistrationMode  *string `json:"registration_mode,omitempty" enum:"invite,open" doc:"invite: registration needs an invite code; open: anyone may register"`
	MessagesPerMinute *int    `json:"messages_per_minute,omitempty" minimum:"1" maximum:"100000" doc:"Messages one user may send per minute"`
	AuthPerMinute     *int    `json:"auth_per_minute,omitempty" minimum:"1" maximum:"10000" doc:"Passkey ceremony requests per client IP per minute"`
	AuthBurst         *int    `json:"auth_burst,omitempty" minimum:"1" maximum:"1000" doc:"Passkey ceremony requests per client IP in a burst"`
	ClaimsPerMinute   *int    `json:"claims_per_minute,omitempty" minimum:"1" maximum:"10000" doc:"Key-package claims per claiming user per minute, all its devices together"`
	Directory         *string `json:"directory,omitempty" enum:"exact,search" doc:"exact: users are found by exact username only; search: signed-in users may also search usernames by prefix"`
	GroupsPerUser     *int    `json:"groups_per_user,omitempty" minimum:"1" maximum:"100000" doc:"Groups a user's devices may be members of when it creates another"`
	GroupsPerHour     *int    `json:"groups_per_hour,omitempty" minimum:"1" maximum:"100000" doc:"Groups one user may create per hour, all its devices together"`
	DevicesPerUser    *int    `json:"devices_per_user,omitempty" minimum:"1" maximum:"10000" doc:"Devices (not revoked) one user may have; another sign-in is refused until one is revoked"`
}

// Key describes one setting.
type Key struct {
	Name string
	// Flag is the configuration option that gives the default.
	Flag string
	// Min and Max bound integer settings; Enum lists string values.
	Min, Max int
	Enum     []string
}

// Keys lists every setting. The JSON names of Values and Overrides match.
var Keys = []Key{
	{Name: "registration_mode", Flag: "registration", Enum: []string{"invite", "open"}},
	{Name: "messages_per_minute", Flag: "messages-per-minute", Min: 1, Max: 100000},
	{Name: "auth_per_minute", Flag: "auth-per-minute", Min: 1, Max: 10000},
	{Name: "auth_burst", Flag: "auth-burst", Min: 1, Max: 1000},
	{Name: "claims_per_minute", Flag: "claims-per-minute", Min: 1, Max: 10000},
	{Name: "directory", Flag: "directory", Enum: []string{"exact", "search"}},
	{Name: "groups_per_user", Flag: "groups-per-user", Min: 1, Max: 100000},
	{Name: "groups_per_hour", Flag: "groups-per-hour", Min: 1, Max: 100000},
	{Name: "devices_per_user", Flag: "devices-per-user", Min: 1, Max: 10000},
}

// KeyNames are the names of Keys, for validation enums.
func KeyNames() []string {
	out := make([]string, len(Keys))
	for i, k := range Keys {
		out[i] = k.Name
	}
	return out
}

func keyByName(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// Defaults returns the values the configuration gives.
func Defaults(cfg config.Config) Values {
	return Values{
		RegistrationMode:  cfg.RegistrationMode,
		MessagesPerMinute: cfg.Limits.MessagesPerMinute,
		AuthPerMinute:     cfg.Limits.AuthRequestsPerMin,
		AuthBurst:         cfg.Limits.AuthBurst,
		ClaimsPerMinute:   cfg.Limits.ClaimsPerMinute,
		Directory:         cfg.Directory,
		GroupsPerUser:     cfg.Limits.GroupsPerUser,
		GroupsPerHour:     cfg.Limits.GroupsPerHour,
		DevicesPerUser:    cfg.Limits.DevicesPerUser,
	}
}

// Apply returns v with the overrides o applied.
func (o Overrides) Apply(v Values) Values {
	ov, vv := reflect.ValueOf(o), reflect.ValueOf(&v).Elem()
	for i := 0; i < ov.NumField(); i++ {
		if f := ov.Field(i); !f.IsNil() {
			vv.Field(i).Set(f.Elem())
		}
	}
	return v
}

// Encode returns the overrides as key → JSON value, the stored form.
func (o Overrides) Encode() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	ov, ot := reflect.ValueOf(o), reflect.TypeOf(o)
	for i := 0; i < ov.NumField(); i++ {
		if f := ov.Field(i); !f.IsNil() {
			raw, _ := json.Marshal(f.Interface()) // strings and ints always encode
			out[jsonName(ot.Field(i))] = raw
		}
	}
	return out
}

// Names lists the keys o sets.
func (o Overrides) Names() []string {
	var out []string
	for k := range o.Encode() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// Validate checks every value o sets against its bounds.
func (o Overrides) Validate() error {
	for name, raw := range o.Encode() {
		k, _ := keyByName(name)
		if len(k.Enum) > 0 {
			var s string
			_ = json.Unmarshal(raw, &s)
			if !slices.Contains(k.Enum, s) {
				return models.Errorf(models.EINVALID, "invalid_setting", "%s must be one of: %s", name, strings.Join(k.Enum, ", "))
			}
			continue
		}
		var n int
		_ = json.Unmarshal(raw, &n)
		if n < k.Min || n > k.Max {
			return models.Errorf(models.EINVALID, "invalid_setting", "%s must be from %d to %d", name, k.Min, k.Max)
		}
	}
	return nil
}

// Decode reads the stored form. Keys this version does not know (written
// by a newer one) and values that do not decode or validate are skipped and
// returned in bad, so the caller can log them; the rest apply.
func Decode(stored map[string]json.RawMessage) (o Overrides, bad []string) {
	names := make([]string, 0, len(stored))
	for k := range stored {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := keyByName(name); !ok {
			bad = append(bad, name)
			continue
		}
		var one Overrides
		obj, _ := json.Marshal(map[string]json.RawMessage{name: stored[name]})
		if err := json.Unmarshal(obj, &one); err != nil || one.Validate() != nil {
			bad = append(bad, name)
			continue
		}
		o = o.Merge(one, nil)
	}
	return o, bad
}

// Merge returns o with the fields set in patch replaced and the fields
// named in reset cleared.
func (o Overrides) Merge(patch Overrides, reset []string) Overrides {
	ov, pv := reflect.ValueOf(&o).Elem(), reflect.ValueOf(patch)
	t := ov.Type()
	for i := 0; i < ov.NumField(); i++ {
		if slices.Contains(reset, jsonName(t.Field(i))) {
			ov.Field(i).SetZero()
		}
		if f := pv.Field(i); !f.IsNil() {
			ov.Field(i).Set(f)
		}
	}
	return o
}

// Live holds the effective settings of a running server.
type Live struct {
	defaults Values
	cur      atomic.Pointer[snapshot]
	mu       sync.Mutex // serialises Set and Subscribe
	subs     []func(Values)
}

type snapshot struct {
	values    Values
	overrides Overrides
}

// NewLive starts with the configuration's values and no overrides.
func NewLive(cfg config.Config) *Live {
	l := &Live{defaults: Defaults(cfg)}
	l.cur.Store(&snapshot{values: l.defaults})
	return l
}

// Defaults are the configured values.
func (l *Live) Defaults() Values { return l.defaults }

// Get returns the effective values.
func (l *Live) Get() Values { return l.cur.Load().values }

// Overrides returns what an admin has set.
func (l *Live) Overrides() Overrides { return l.cur.Load().overrides }

// Set replaces the overrides (already validated) and tells subscribers.
func (l *Live) Set(o Overrides) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := o.Apply(l.defaults)
	l.cur.Store(&snapshot{values: v, overrides: o})
	for _, f := range l.subs {
		f(v)
	}
}

// Subscribe calls f with the current values now and with the new values
// after every change. f must be quick and must not call Set.
func (l *Live) Subscribe(f func(Values)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, f)
	f(l.Get())
}

// String describes the overrides for logs.
func (o Overrides) String() string {
	var parts []string
	for _, n := range o.Names() {
		parts = append(parts, fmt.Sprintf("%s=%s", n, o.Encode()[n]))
	}
	return strings.Join(parts, " ")
}
