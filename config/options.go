package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// option binds one tagged struct field to flag.Value.
type option struct {
	name  string
	usage string
	v     reflect.Value
}

func options(cfg *Config) []*option {
	var out []*option
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			fv := v.Field(i)
			if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(time.Duration(0)) {
				walk(fv)
				continue
			}
			if name := sf.Tag.Get("flag"); name != "" {
				out = append(out, &option{name: name, usage: sf.Tag.Get("usage"), v: fv})
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem())
	return out
}

func (o *option) envName() string {
	return "SOVEREIGN_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

func (o *option) isBool() bool { return o.v.Kind() == reflect.Bool }

// IsBoolFlag lets `--flag` stand for `--flag=true`.
func (o *option) IsBoolFlag() bool { return o.isBool() }

func (o *option) String() string {
	if o == nil || !o.v.IsValid() {
		return ""
	}
	if o.v.Type() == reflect.TypeOf([]string(nil)) {
		return strings.Join(o.v.Interface().([]string), ",")
	}
	return fmt.Sprint(o.v.Interface())
}

func (o *option) Set(s string) error {
	switch {
	case o.v.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 30s, 15m, 720h)")
		}
		o.v.SetInt(int64(d))
	case o.v.Kind() == reflect.String:
		o.v.SetString(s)
	case o.v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean")
		}
		o.v.SetBool(b)
	case o.v.Kind() == reflect.Int || o.v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		o.v.SetInt(n)
	case o.v.Type() == reflect.TypeOf([]string(nil)):
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		o.v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported option type %s", o.v.Type())
	}
	return nil
}

// noopValue accepts any flag during the pre-scan for --config.
type noopValue struct{ isBool bool }

func (noopValue) String() string     { return "" }
func (noopValue) Set(string) error   { return nil }
func (n noopValue) IsBoolFlag() bool { return n.isBool }
