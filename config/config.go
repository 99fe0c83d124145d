// Package config defines Sovereign's configuration: defaults, an optional
// YAML file, SOVEREIGN_* environment variables and command-line flags, in
// rising order of precedence, validated by the rules in their `validate`
// tags (rules.go).
//
// Every option is one struct field with a `flag` tag; its environment
// variable is SOVEREIGN_ followed by the flag name in upper case with dashes
// turned into underscores, and its config-file key is the flag name.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the server configuration.
type Config struct {
	Listen                   string        `flag:"listen" usage:"address the API listens on (host:port)" validate:"required,hostport"`
	AdminListen              string        `flag:"admin-listen" usage:"separate address for the admin UI and admin API (empty: same as --listen)" validate:"omitempty,hostport"`
	DataDir                  string        `flag:"data-dir" usage:"directory holding sovereign.db" validate:"required"`
	Database                 string        `flag:"database" usage:"database: empty for the embedded SQLite file in --data-dir, or a PostgreSQL URL postgres://user@host:5432/dbname (several instances may share it; put a password in PGPASSWORD or ~/.pgpass, not in the URL)" validate:"omitempty,database"`
	AllowInsecurePermissions bool          `flag:"allow-insecure-permissions" usage:"start even if the data directory or database is readable by group or others (logged loudly)"`
	Synchronous              string        `flag:"sqlite-synchronous" usage:"SQLite synchronous mode: FULL (durable on power loss) or NORMAL" validate:"oneof=FULL NORMAL"`
	RPID                     string        `flag:"rp-id" usage:"WebAuthn relying-party ID: the domain users see (default: the host of the first --rp-origins, else localhost)" validate:"required,rpid"`
	RPOrigins                []string      `flag:"rp-origins" usage:"comma-separated origins allowed in WebAuthn ceremonies (default: derived from --listen and --rp-id, e.g. http://localhost:8080)" validate:"required,min=1,dive,origin"`
	RPName                   string        `flag:"rp-name" usage:"relying-party display name shown by authenticators" validate:"required,max=64"`
	CORSOrigins              []string      `flag:"cors-origins" usage:"comma-separated origins of web apps served from elsewhere that may call the API from a browser (default: none; credentials are never allowed: tokens are bearer headers)" validate:"dive,origin"`
	PublicURL                string        `flag:"public-url" usage:"base URL used in invite links (default: first --rp-origins entry)" validate:"omitempty,origin"`
	TLSCert                  string        `flag:"tls-cert" usage:"PEM certificate file; with --tls-key serves HTTPS" validate:"required_with=TLSKey,omitempty,file"`
	TLSKey                   string        `flag:"tls-key" usage:"PEM private key file for --tls-cert" validate:"required_with=TLSCert,omitempty,file"`
	TrustedProxies           []string      `flag:"trusted-proxies" usage:"comma-separated CIDRs whose X-Forwarded-For is believed" validate:"dive,cidr"`
	LogLevel                 string        `flag:"log-level" usage:"debug, info, warn or error" validate:"oneof=debug info warn error"`
	LogFormat                string        `flag:"log-format" usage:"text or json" validate:"oneof=text json"`
	ShutdownTimeout          time.Duration `flag:"shutdown-timeout" usage:"how long graceful shutdown waits for requests" validate:"gte=0,lte=10m"`
	SessionTTL               time.Duration `flag:"session-ttl" usage:"session lifetime" validate:"gte=1m,lte=8760h"`
	RegistrationMode         string        `flag:"registration" usage:"invite (default) or open" validate:"oneof=invite open"`
	Directory                string        `flag:"directory" usage:"user directory: exact (find users by exact username only, default) or search (also by username prefix)" validate:"oneof=exact search"`
	CleanupInterval          time.Duration `flag:"cleanup-interval" usage:"how often expired key packages, sessions and other stale rows are deleted" validate:"gte=1s,lte=24h"`
	BackupDir                string        `flag:"backup-dir" usage:"directory for scheduled backups: a verified copy of the database at start and every --backup-every (empty: off)"`
	BackupEvery              time.Duration `flag:"backup-every" usage:"interval of scheduled backups" validate:"gte=1m,lte=8760h"`
	BackupKeep               int           `flag:"backup-keep" usage:"scheduled backups kept (the oldest beyond are deleted)" validate:"gte=1,lte=10000"`
	Push                     bool          `flag:"push" usage:"Web Push: send content-free wake-ups to subscribed devices that have no open stream (--push=false: no subscriptions accepted, nothing sent)"`
	PushContact              string        `flag:"push-contact" usage:"contact for push services in the VAPID sub claim: mailto:… or https:… (default: the public URL)" validate:"omitempty,pushcontact"`
	PushAllowHosts           []string      `flag:"push-allow-hosts" usage:"comma-separated push endpoint host names or IP addresses allowed although they are not public (and over http://), e.g. a self-hosted UnifiedPush distributor on the LAN (default: none)" validate:"dive,pushhost"`
	GeoIPDB                  string        `flag:"geoip-db" usage:"MaxMind-format database (GeoLite2-City, GeoLite2-Country or DB-IP lite .mmdb) to add the country and city of a new device's sign-in to the new_device notice; looked up locally, no request leaves the server (empty: off, the default)" validate:"omitempty,file,mmdb"`
	PprofListen              string        `flag:"pprof-listen" usage:"debugging: serve Go's net/http/pprof profiles on this loopback address, e.g. 127.0.0.1:6060 (empty: off)" validate:"omitempty,hostport,loopback"`

	Limits Limits

	// derived records which options Validate filled in because they were
	// not given, so that binding a port-0 listener can derive them again.
	derived derivedOptions
}

// derivedOptions says which options were derived rather than given.
type derivedOptions struct {
	rpID, origins bool
}

// Limits are the abuse limits of the threat model; all configurable.
type Limits struct {
	MaxBodyBytes          int64         `flag:"max-body-bytes" usage:"largest JSON request body" validate:"gte=4096,lte=67108864"`
	MaxMessageBytes       int           `flag:"max-message-bytes" usage:"largest encrypted message payload" validate:"gte=1024,lte=16777216"`
	MessagesPerMinute     int           `flag:"messages-per-minute" usage:"messages one user may send per minute" validate:"gte=1"`
	StreamsPerIP          int           `flag:"streams-per-ip" usage:"concurrent event streams per client IP" validate:"gte=1"`
	StreamsTotal          int           `flag:"streams-total" usage:"concurrent event streams in all" validate:"gte=1"`
	IPv6Prefix            int           `flag:"ipv6-prefix" usage:"per-IP limits count an IPv6 client by this prefix length (64: every address of one /64 shares one budget)" validate:"gte=16,lte=128"`
	AuthRequestsPerMin    int           `flag:"auth-per-minute" usage:"ceremony requests per client IP per minute" validate:"gte=1"`
	AuthBurst             int           `flag:"auth-burst" usage:"ceremony requests per client IP in a burst" validate:"gte=1"`
	CeremonyTimeout       time.Duration `flag:"ceremony-timeout" usage:"WebAuthn challenge lifetime" validate:"gte=5s,lte=10m"`
	ClaimsPerMinute       int           `flag:"claims-per-minute" usage:"key-package claims per claiming user per minute, all its devices together" validate:"gte=1"`
	ClaimsPerTarget       int           `flag:"claims-per-target-per-minute" usage:"key-package claims one claiming user may make against one target user per minute (each claimer has its own budget)" validate:"gte=1"`
	GroupQuotaBytes       int64         `flag:"group-quota-bytes" usage:"stored bytes per group" validate:"gte=65536"`
	Retention             time.Duration `flag:"retention" usage:"how long messages are kept when not every member has acked them (below 1h only for tests)" validate:"gte=1s"`
	AuditRetention        time.Duration `flag:"audit-retention" usage:"how long audit-log entries are kept (0: forever)" validate:"eq=0|gte=24h"`
	IPRetention           time.Duration `flag:"ip-retention" usage:"how long the audit log keeps client IP addresses; older entries keep none (IPs are stored nowhere else)" validate:"gte=1h"`
	HeartbeatInterval     time.Duration `flag:"heartbeat" usage:"interval of stream keep-alive events" validate:"gte=1s,lte=5m"`
	StreamCoalesce        time.Duration `flag:"stream-coalesce" usage:"how long the next events of an SSE stream that has just written wait to be written together (fewer system calls under load; a stream that was quiet writes at once; 0: never wait)" validate:"gte=0,lte=1s"`
	KeyPackageLowWater    int           `flag:"key-package-low-water" usage:"normal key packages below which a device is told to upload more" validate:"gte=0"`
	KeyPackageMaxLifetime time.Duration `flag:"key-package-max-lifetime" usage:"longest key-package lifetime accepted" validate:"gte=1h"`
	KeyPackagesPerDevice  int           `flag:"key-packages-per-device" usage:"normal key packages one device may hold (all suites together)" validate:"gte=1,lte=100000"`
	MaxAttachmentBytes    int64         `flag:"max-attachment-bytes" usage:"largest encrypted attachment" validate:"gte=1024"`
	UserQuotaBytes        int64         `flag:"user-quota-bytes" usage:"attachment bytes one user may store in all groups together" validate:"gte=65536"`
	GroupsPerUser         int           `flag:"groups-per-user" usage:"groups a user's devices may be members of when it creates another (default of the groups_per_user setting)" validate:"gte=1,lte=100000"`
	GroupsPerHour         int           `flag:"groups-per-hour" usage:"groups one user may create per hour, all its devices together (default of the groups_per_hour setting)" validate:"gte=1,lte=100000"`
	DevicesPerUser        int           `flag:"devices-per-user" usage:"devices (not revoked) one user may have; signing in on another is refused until one is revoked (default of the devices_per_user setting)" validate:"gte=1,lte=10000"`
	RequirePadding        bool          `flag:"require-padding" usage:"refuse application messages whose size is not one of the SDKs' padding buckets (hides message lengths from the server's store)"`
}

// Default returns the configuration that makes `sovereign serve` work with no
// arguments on a developer machine.
func Default() Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		DataDir:          "./data",
		Synchronous:      "FULL",
		RPName:           "Sovereign",
		LogLevel:         "info",
		LogFormat:        "text",
		ShutdownTimeout:  10 * time.Second,
		SessionTTL:       30 * 24 * time.Hour,
		RegistrationMode: "invite",
		Directory:        "exact",
		CleanupInterval:  10 * time.Minute,
		BackupEvery:      24 * time.Hour,
		BackupKeep:       7,
		Push:             true,
		Limits: Limits{
			MaxBodyBytes:          1 << 20,
			MaxMessageBytes:       64 * 1024,
			MessagesPerMinute:     60,
			StreamsPerIP:          10,
			StreamsTotal:          1000,
			IPv6Prefix:            64,
			AuthRequestsPerMin:    30,
			AuthBurst:             10,
			CeremonyTimeout:       60 * time.Second,
			ClaimsPerMinute:       30,
			ClaimsPerTarget:       60,
			GroupQuotaBytes:       1 << 30,
			Retention:             30 * 24 * time.Hour,
			AuditRetention:        365 * 24 * time.Hour,
			IPRetention:           7 * 24 * time.Hour,
			HeartbeatInterval:     15 * time.Second,
			KeyPackageLowWater:    10,
			KeyPackageMaxLifetime: 90 * 24 * time.Hour,
			KeyPackagesPerDevice:  1000,
			MaxAttachmentBytes:    100 << 20,
			UserQuotaBytes:        2 << 30,
			GroupsPerUser:         200,
			GroupsPerHour:         30,
			DevicesPerUser:        20,
		},
	}
}

// Postgres reports whether --database selects PostgreSQL.
func (c *Config) Postgres() bool { return c.Database != "" }

// DatabaseLabel names the database for logs: the SQLite file, or the
// PostgreSQL URL without its password.
func (c *Config) DatabaseLabel() string {
	if !c.Postgres() {
		return c.DBPath()
	}
	u, err := url.Parse(c.Database)
	if err != nil {
		return "postgres"
	}
	return u.Redacted()
}

// DBPath is the database file inside the data directory.
func (c *Config) DBPath() string { return strings.TrimSuffix(c.DataDir, "/") + "/sovereign.db" }

// AttachmentsDir is the directory of attachment files inside the data
// directory.
func (c *Config) AttachmentsDir() string { return strings.TrimSuffix(c.DataDir, "/") + "/attachments" }

// TrustedProxyPrefixes parses TrustedProxies (already validated).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Error is a configuration error; its message is one line for the operator.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Load builds the configuration from defaults, the file named by --config or
// SOVEREIGN_CONFIG, the environment and args (flags only), then validates it.
// The returned FlagSet has already parsed args; its Args() are the leftovers.
// On -h it returns flag.ErrHelp and prints nothing: PrintUsage does.
// extra registers a command's own flags (e.g. `invite --admin`) besides the
// configuration's.
func Load(name string, args []string, env func(string) string, extra ...func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	cfg := Default()
	fields := options(&cfg)

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors are reported by the caller in one line; -h prints the full
	// list (PrintUsage) on the caller's output.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, e := range extra {
		e(fs)
	}
	configPath := fs.String("config", env("SOVEREIGN_CONFIG"), "YAML config file (keys are flag names)")
	for _, f := range fields {
		fs.Var(f, f.name, f.usage+" (env "+f.envName()+")")
	}

	// The config file applies before env and flags: find it first.
	pre := flag.NewFlagSet(name, flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	prePath := pre.String("config", *configPath, "")
	for _, f := range fields {
		pre.Var(noopValue{isBool: f.isBool()}, f.name, "")
	}
	fs.VisitAll(func(f *flag.Flag) {
		if pre.Lookup(f.Name) == nil {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			pre.Var(noopValue{isBool: ok && b.IsBoolFlag()}, f.Name, "")
		}
	})
	_ = pre.Parse(args)
	if *prePath != "" {
		if err := applyFile(*prePath, fields); err != nil {
			return cfg, fs, err
		}
	}
	for _, f := range fields {
		if v := env(f.envName()); v != "" {
			if err := f.Set(v); err != nil {
				return cfg, fs, &Error{Msg: fmt.Sprintf("invalid %s=%q: %v", f.envName(), v, err)}
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, fs, err
		}
		return cfg, fs, &Error{Msg: flagError(err)}
	}
	if err := Validate(&cfg); err != nil {
		return cfg, fs, err
	}
	return cfg, fs, nil
}

// Validate checks every field and cross-field rule, returning an *Error whose
// message names the offending option.
func Validate(cfg *Config) error {
	derive(cfg)
	f, err := checkRules(cfg)
	if err != nil {
		return &Error{Msg: "invalid configuration rule: " + err.Error()}
	}
	if f != nil {
		if f.flag == "database" { // never echo a URL that may hold a password
			return &Error{Msg: "invalid --database: " + explain(f.rule)}
		}
		return &Error{Msg: fmt.Sprintf("invalid --%s %q: %s", f.flag, fmt.Sprint(f.value), explain(f.rule))}
	}
	return checkConsistency(cfg)
}

func applyFile(path string, fields []*option) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return &Error{Msg: fmt.Sprintf("read config file: %v", err)}
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return &Error{Msg: fmt.Sprintf("parse config file %s: %v", path, err)}
	}
	byName := map[string]*option{}
	for _, f := range fields {
		byName[f.name] = f
	}
	for k, val := range m {
		f, ok := byName[k]
		if !ok {
			return &Error{Msg: fmt.Sprintf("config file %s: unknown key %q", path, k)}
		}
		var s string
		switch x := val.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if err := f.Set(s); err != nil {
			return &Error{Msg: fmt.Sprintf("config file %s: invalid %s %q: %v", path, k, s, err)}
		}
	}
	return nil
}

// flagError rewords the flag package's parse errors in one line with the
// option spelled as the documentation spells it (--name).
func flagError(err error) string {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		return "unknown flag " + dashes(strings.TrimPrefix(msg, "flag provided but not defined: "))
	case strings.HasPrefix(msg, "flag needs an argument: "):
		return dashes(strings.TrimPrefix(msg, "flag needs an argument: ")) + " needs a value"
	case strings.HasPrefix(msg, "invalid boolean value "):
		// invalid boolean value "maybe" for -allow-insecure-permissions: not a boolean
		if i := strings.Index(msg, " for -"); i > 0 {
			rest := msg[i+len(" for -"):]
			if j := strings.Index(rest, ": "); j > 0 {
				return fmt.Sprintf("invalid --%s %s: %s", rest[:j], strings.TrimPrefix(msg[:i], "invalid boolean value "), rest[j+2:])
			}
		}
	case strings.HasPrefix(msg, "invalid value "):
		// invalid value "abc" for flag -max-message-bytes: not an integer
		if i := strings.Index(msg, " for flag -"); i > 0 {
			rest := msg[i+len(" for flag -"):]
			if j := strings.Index(rest, ": "); j > 0 {
				val := strings.TrimPrefix(msg[:i], "invalid value ")
				return fmt.Sprintf("invalid --%s %s: %s", rest[:j], val, rest[j+2:])
			}
		}
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

func dashes(flagName string) string { return "--" + strings.TrimLeft(flagName, "-") }

// PrintUsage writes the help of a command: its synopsis and every flag
// with its environment variable, as `-h` shows it.
func PrintUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: %s\n\nEvery configuration flag is also an environment variable (shown) and a key of the --config YAML file.\n\nflags:\n", synopsis)
	fs.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%s\n    \t%s%s\n", f.Name, f.Usage, def)
	})
	fs.SetOutput(io.Discard)
}
