package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sovereign-im/sovereign/geoip"
)

// The `validate` tags of Config and Limits are checked here. They use a
// small, fixed vocabulary (the one go-playground/validator spells the same
// way, which this package used before; dropping it removed 16 packages and
// about 1 MiB of idle memory from the server):
//
//	required          the value is not empty (a list: at least one entry)
//	required_with=F   set whenever field F is set
//	omitempty         an empty value skips the rules after it
//	dive              the rules after it apply to every entry of a list
//	oneof=a b c       one of the words
//	gte=N lte=N eq=N  numbers and durations compared with N (e.g. 1m);
//	min=N max=N       strings by length in characters, lists by entries
//	a|b               either rule holds
//	hostport, origin, … named checks of a string (see stringChecks)
//
// A tag with a rule outside this vocabulary, or a parameter that does not
// parse for the field's type, is a programming error that Validate reports
// on every start (and so every test that loads a configuration).

// ruleFailure is the first rule a field breaks.
type ruleFailure struct {
	flag  string // the option, as its flag is spelled
	value any    // the offending value (a list's entry under dive)
	rule  string // the rule as written in the tag, e.g. "gte=1m" or "eq=0|gte=24h"
}

// stringChecks are the named rules of a string value.
var stringChecks = map[string]func(string) bool{
	"hostport": validHostPort,
	"loopback": isLoopbackHostPort,
	"database": func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") && u.Host != ""
	},
	"mmdb": func(s string) bool { return geoip.Check(s) == nil },
	"rpid": func(s string) bool { return net.ParseIP(s) == nil && validHostname(s) },
	"pushcontact": func(s string) bool {
		if rest, ok := strings.CutPrefix(s, "mailto:"); ok {
			return strings.Contains(rest, "@") && !strings.ContainsAny(rest, " ,")
		}
		u, err := url.Parse(s)
		return err == nil && u.Scheme == "https" && u.Host != ""
	},
	"pushhost": func(s string) bool {
		s = strings.Trim(s, "[]")
		return net.ParseIP(s) != nil || validHostname(s)
	},
	"origin": func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
			(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
	},
	// cidr accepts what TrustedProxyPrefixes parses.
	"cidr": func(s string) bool {
		_, err := netip.ParsePrefix(strings.TrimSpace(s))
		return err == nil
	},
	"file": func(s string) bool {
		f, err := os.Open(s)
		if err != nil {
			return false
		}
		defer f.Close()
		st, err := f.Stat()
		return err == nil && st.Mode().IsRegular()
	},
}

// checkRules applies every field's `validate` tag of cfg (Config and its
// nested Limits) and returns the first rule broken, or nil. A malformed
// tag is returned as an error.
func checkRules(cfg *Config) (*ruleFailure, error) {
	return checkStruct(reflect.ValueOf(cfg).Elem())
}

func checkStruct(v reflect.Value) (*ruleFailure, error) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		if sf.Type.Kind() == reflect.Struct {
			if f, err := checkStruct(v.Field(i)); f != nil || err != nil {
				return f, err
			}
			continue
		}
		tag := sf.Tag.Get("validate")
		if tag == "" {
			continue
		}
		f, err := checkField(v, v.Field(i), strings.Split(tag, ","))
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", sf.Name, err)
		}
		if f != nil {
			f.flag = sf.Tag.Get("flag")
			return f, nil
		}
	}
	return nil, nil
}

// checkField applies rules in order to field; parent holds the fields that
// required_with names.
func checkField(parent, field reflect.Value, rules []string) (*ruleFailure, error) {
	for i, r := range rules {
		name, param, _ := strings.Cut(r, "=")
		switch name {
		case "omitempty":
			if field.IsZero() {
				return nil, nil
			}
		case "required":
			if isEmpty(field) {
				return &ruleFailure{value: field.Interface(), rule: r}, nil
			}
		case "required_with":
			other := parent.FieldByName(param)
			if !other.IsValid() {
				return nil, fmt.Errorf("required_with names unknown field %q", param)
			}
			if !isEmpty(other) && isEmpty(field) {
				return &ruleFailure{value: field.Interface(), rule: r}, nil
			}
		case "dive":
			if field.Kind() != reflect.Slice {
				return nil, fmt.Errorf("dive on a %s", field.Type())
			}
			for j := 0; j < field.Len(); j++ {
				if f, err := checkField(parent, field.Index(j), rules[i+1:]); f != nil || err != nil {
					return f, err
				}
			}
			return nil, nil
		default:
			ok, err := holdsAny(field, r)
			if err != nil {
				return nil, err
			}
			if !ok {
				return &ruleFailure{value: field.Interface(), rule: r}, nil
			}
		}
	}
	return nil, nil
}

// holdsAny reports whether one of the |-separated alternatives of r holds.
func holdsAny(field reflect.Value, r string) (bool, error) {
	for _, alt := range strings.Split(r, "|") {
		ok, err := holds(field, alt)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// holds tests one value rule.
func holds(field reflect.Value, r string) (bool, error) {
	name, param, _ := strings.Cut(r, "=")
	if check, ok := stringChecks[name]; ok {
		if field.Kind() != reflect.String {
			return false, fmt.Errorf("rule %s on a %s", name, field.Type())
		}
		return check(field.String()), nil
	}
	switch name {
	case "oneof":
		if field.Kind() != reflect.String {
			return false, fmt.Errorf("rule oneof on a %s", field.Type())
		}
		for _, w := range strings.Fields(param) {
			if field.String() == w {
				return true, nil
			}
		}
		return false, nil
	case "gte", "lte", "eq", "min", "max":
		have, limit, err := measure(field, param)
		if err != nil {
			return false, fmt.Errorf("rule %s: %w", r, err)
		}
		switch name {
		case "gte", "min":
			return have >= limit, nil
		case "lte", "max":
			return have <= limit, nil
		default:
			return have == limit, nil
		}
	}
	return false, fmt.Errorf("unknown rule %q", name)
}

// measure returns the quantity a comparison rule compares (a number or
// duration itself, a string's length in characters, a list's entries) and
// the rule's parameter parsed for that type.
func measure(field reflect.Value, param string) (have, limit int64, err error) {
	switch {
	case field.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(param)
		return field.Int(), int64(d), err
	case field.Kind() == reflect.Int || field.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(param, 10, 64)
		return field.Int(), n, err
	case field.Kind() == reflect.String:
		n, err := strconv.ParseInt(param, 10, 64)
		return int64(utf8.RuneCountInString(field.String())), n, err
	case field.Kind() == reflect.Slice:
		n, err := strconv.ParseInt(param, 10, 64)
		return int64(field.Len()), n, err
	}
	return 0, 0, fmt.Errorf("cannot compare a %s", field.Type())
}

// isEmpty reports whether a value counts as not given: the zero value, or a
// list without entries.
func isEmpty(v reflect.Value) bool {
	if v.Kind() == reflect.Slice {
		return v.Len() == 0
	}
	return v.IsZero()
}

func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return false
	}
	return host == "" || net.ParseIP(host) != nil || validHostname(host)
}

func isLoopbackHostPort(s string) bool {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// explain says in words what a broken rule asks for.
func explain(rule string) string {
	name, param, _ := strings.Cut(rule, "=")
	switch name {
	case "required":
		return "must be set"
	case "required_with":
		return "must be set together with --" + flagNameOf(param)
	case "hostport":
		return "must be host:port, e.g. 127.0.0.1:8080"
	case "database":
		return "must be empty (SQLite in --data-dir) or a PostgreSQL URL such as postgres://sovereign@db.internal:5432/sovereign"
	case "loopback":
		return "must be a loopback host:port such as 127.0.0.1:6060 (profiles must not be reachable from the network)"
	case "rpid":
		return "must be a domain name such as localhost or chat.example.org, not an IP address (passkeys need a domain; use localhost on this machine)"
	case "origin":
		return "must be an origin such as https://chat.example.org (scheme and host, no path)"
	case "pushcontact":
		return "must be mailto:someone@example.org or an https:// URL"
	case "pushhost":
		return "must be host names or IP addresses without port, e.g. ntfy.lan,192.168.1.20"
	case "cidr":
		return "must be a CIDR such as 10.0.0.0/8"
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(param, " ", ", ")
	case "gte", "min":
		return "must be at least " + param
	case "lte", "max":
		return "must be at most " + param
	case "file":
		return "must name a readable file"
	case "mmdb":
		return "is not a MaxMind DB with countries: give a GeoLite2-City, GeoLite2-Country or DB-IP lite .mmdb file"
	}
	if rule == "eq=0|gte=24h" {
		return "must be 0 (keep forever) or at least 24h"
	}
	return "fails rule " + rule
}

func flagNameOf(field string) string {
	for _, t := range []reflect.Type{reflect.TypeOf(Config{}), reflect.TypeOf(Limits{})} {
		if sf, ok := t.FieldByName(field); ok {
			return sf.Tag.Get("flag")
		}
	}
	return field
}
