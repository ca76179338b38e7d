// Package config reads hpcctl.conf, the site's settings for launching containers, into a typed
// Config with a default for every directive, and checks it with errors that name the line.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where hpcctl looks for its configuration file.
const DefaultPath = "/etc/hpcctl/hpcctl.conf"

// Namespaces are the optional namespaces allowed_namespaces may list.
var Namespaces = []string{"pid", "ipc", "net", "uts"}

// Built-in profile names. They are the one list of them: isolation defines each profile's walls
// under these names (a test there fails when its profiles and this list drift apart).
const (
	ProfileDefault    = "default"
	ProfileContain    = "contain"
	ProfileContainAll = "containall"
	ProfileIsolate    = "isolate"
)

// BuiltinProfiles are the profiles hpcctl defines, weakest first; [profile.NAME] tables may build
// on them.
var BuiltinProfiles = []string{ProfileDefault, ProfileContain, ProfileContainAll, ProfileIsolate}

// Config is hpcctl.conf. Every field has its default from Defaults when the file leaves it out.
type Config struct {
	// Path is the file the Config was read from, "" for the built-in defaults.
	Path string `toml:"-"`

	// MountHome, MountTmp, MountProc, MountSys, MountDev and MountHostFiles turn the system
	// mounts of every profile on or off (off: the image's own directory shows).
	MountHome      bool `toml:"mount_home"`
	MountTmp       bool `toml:"mount_tmp"`
	MountProc      bool `toml:"mount_proc"`
	MountSys       bool `toml:"mount_sys"`
	MountDev       bool `toml:"mount_dev"`
	MountHostFiles bool `toml:"mount_hostfiles"`
	// BindPaths are bound into every container whose profile takes host defaults, each
	// "src[:dst[:ro|rw]]" as for --bind.
	BindPaths []string `toml:"bind_paths"`
	// UserBinds lets users give --bind and $HPCCTL_BIND.
	UserBinds bool `toml:"user_binds"`
	// AllowedNamespaces are the namespaces users may ask for (profiles and flags).
	AllowedNamespaces []string `toml:"allowed_namespaces"`
	// AllowedProfiles, when set, are the only profiles users may choose; nil allows all.
	AllowedProfiles []string `toml:"allowed_profiles"`
	// DefaultProfile is the profile used without a profile flag.
	DefaultProfile string `toml:"default_profile"`
	// Profiles are the site's own profiles, or changes to the built-in ones.
	Profiles map[string]ProfileDef `toml:"profile"`
	// LimitContainerPaths, when set, runs only images under these directories.
	LimitContainerPaths []string `toml:"limit_container_paths"`
	// LimitContainerOwners, when set, runs only images owned by these users (names or UIDs).
	LimitContainerOwners []string `toml:"limit_container_owners"`
	// AllowSetuid lets hpcctl use its setuid-root starter for kernel mounts as a plain user.
	AllowSetuid bool `toml:"allow_setuid"`
	// KernelMountOwners are the users (names or UIDs), besides root, whose images the setuid
	// starter mounts with the kernel; other images go through squashfuse_ll.
	KernelMountOwners []string `toml:"kernel_mount_owners"`
	// Squashfuse is the squashfuse_ll program; "" searches PATH.
	Squashfuse string `toml:"squashfuse"`
	// CacheDir holds a per-user image cache (DIR/UID); $HPCCTL_CACHEDIR wins; "" is ~/.cache/hpcctl.
	CacheDir string `toml:"cache_dir"`
	// Signature is the signature policy (the fields of internal/sign.Policy).
	Signature Signature `toml:"signature"`
	// Environment is the [environment] table.
	Environment Environment `toml:"environment"`
	// Session is the [session] table: shared image sessions (internal/session).
	Session Session `toml:"session"`
}

// Session is the [session] table.
type Session struct {
	// Enabled lets a user's containers of one image on a node share one mount (the site's switch).
	Enabled bool `toml:"enabled"`
	// IdleTimeout is how long a session outlives its last container, a Go duration ("30s").
	IdleTimeout string `toml:"idle_timeout"`
	// FUSEServer serves a session's image (validate has checked it is one of the two).
	FUSEServer FUSEServer `toml:"fuse_server"`
}

// FUSEServer is what serves a shared image session's mount ([session] fuse_server). It is a
// closed set: the session holder is told its server with these names too.
type FUSEServer string

const (
	// FUSEServerHpcctl is hpcctl's own server, goroutines of the session holder.
	FUSEServerHpcctl FUSEServer = "hpcctl"
	// FUSEServerSquashfuse is the squashfuse_ll program, which the holder runs.
	FUSEServerSquashfuse FUSEServer = "squashfuse_ll"
)

// ParseFUSEServer returns the server s names, or an error that lists the known ones.
func ParseFUSEServer(s string) (FUSEServer, error) {
	switch k := FUSEServer(s); k {
	case FUSEServerHpcctl, FUSEServerSquashfuse:
		return k, nil
	}
	return "", fmt.Errorf("unknown server %q; want one of %s, %s", s, FUSEServerHpcctl, FUSEServerSquashfuse)
}

// DefaultSessionIdle is the idle timeout without idle_timeout: long enough for the next task
// of a job array or the next command of a job script, short enough that nothing lingers.
const DefaultSessionIdle = 30 * time.Second

// SessionIdle is the parsed idle timeout (validate has checked it).
func (s Session) SessionIdle() time.Duration {
	d, err := time.ParseDuration(s.IdleTimeout)
	if s.IdleTimeout == "" || err != nil {
		return DefaultSessionIdle
	}
	return d
}

// Environment is the [environment] table.
type Environment struct {
	// JobVariables are the host variables (names, or patterns such as "SLURM_*") that pass into
	// the container under every profile: the batch job's, the MPI launcher's and the proxies.
	JobVariables []string `toml:"job_variables"`
}

// Signature is the [signature] table.
type Signature struct {
	RequireSigned  bool     `toml:"require_signed"`
	TrustedKeysDir string   `toml:"trusted_keys_dir"`
	AllowedPaths   []string `toml:"allowed_paths"`
	// VerifyData checks every image's data against its signature before it is mounted
	// (--verify-data for every launch).
	VerifyData bool `toml:"verify_data"`
}

// ProfileDef is one [profile.NAME] table: a base profile and the fields it changes; nil fields
// keep the base's value.
type ProfileDef struct {
	// Base is the built-in profile this one starts from (default: "default").
	Base            string  `toml:"base"`
	PID             *bool   `toml:"pid"`
	IPC             *bool   `toml:"ipc"`
	Net             *bool   `toml:"net"`
	UTS             *bool   `toml:"uts"`
	Hostname        *string `toml:"hostname"`
	MinimalDev      *bool   `toml:"minimal_dev"`
	PrivateTmp      *bool   `toml:"private_tmp"`
	EmptyHome       *bool   `toml:"empty_home"`
	Cwd             *string `toml:"cwd"`
	Env             *string `toml:"env"`
	HostFiles       *bool   `toml:"host_files"`
	ConfigBinds     *bool   `toml:"config_binds"`
	ReadOnlyProcSys *bool   `toml:"readonly_proc_sys"`
	NoNewPrivs      *bool   `toml:"no_new_privs"`
	// Umask is octal ("022"); "" keeps the caller's.
	Umask *string `toml:"umask"`
}

// Defaults returns the configuration used when no file exists.
func Defaults() *Config {
	return &Config{
		MountHome: true, MountTmp: true, MountProc: true, MountSys: true, MountDev: true, MountHostFiles: true,
		UserBinds:         true,
		AllowedNamespaces: append([]string(nil), Namespaces...),
		DefaultProfile:    "default",
		Environment:       Environment{JobVariables: append([]string(nil), DefaultJobVariables...)},
		Session:           Session{Enabled: true, IdleTimeout: DefaultSessionIdle.String(), FUSEServer: FUSEServerHpcctl},
	}
}

// Load reads the configuration file at path. A missing file gives the defaults when missingOK
// (the default location), and an error otherwise.
func Load(path string, missingOK bool) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return Defaults(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return Parse(path, b)
}

// Parse reads configuration text; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	c := Defaults()
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s (fix the file, see the commented etc/hpcctl.conf)", name, pe.Position.Line, pe.Message)
		}
		// Type mismatches come as "toml: line N (last key "k"): ...".
		// Compiled here, on the error path only: every job starts hpcctl.
		decodeErrLine := regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)
		if m := decodeErrLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s:%s: %s: %s", name, m[1], m[2], m[3])
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.Path = name
	if !md.IsDefined("allowed_profiles") {
		c.AllowedProfiles = nil
	}
	lines := keyLinesOf(data)
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, fmt.Errorf("%s:%d: unknown directive %q (misspelt? etc/hpcctl.conf lists every directive)", name, lines.find(k), k.String())
	}
	if err := c.validate(); err != nil {
		var ve *valueError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%s:%d: %s", name, lines.find(ve.key), ve.msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// valueError is a bad value of one key.
type valueError struct {
	key toml.Key
	msg string
}

func (e *valueError) Error() string { return e.key.String() + ": " + e.msg }

func bad(key toml.Key, format string, args ...any) error {
	return &valueError{key: key, msg: fmt.Sprintf("%s: ", key.String()) + fmt.Sprintf(format, args...)}
}

// keyLines maps each key of a TOML file to the line that sets it (table headers included); the
// toml package's MetaData keeps positions private.
type keyLines map[string]int

func (k keyLines) find(key toml.Key) int {
	for i := len(key); i > 0; i-- {
		if l, ok := k[toml.Key(key[:i]).String()]; ok {
			return l
		}
	}
	return 0
}

func keyLinesOf(data []byte) keyLines {
	out := keyLines{}
	var table []string
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "[") {
			h := strings.Trim(strings.SplitN(l, "#", 2)[0], " \t[]")
			table = splitKey(h)
			if _, ok := out[toml.Key(table).String()]; !ok {
				out[toml.Key(table).String()] = i + 1
			}
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		full := append(append([]string(nil), table...), splitKey(k)...)
		if _, ok := out[toml.Key(full).String()]; !ok {
			out[toml.Key(full).String()] = i + 1
		}
	}
	return out
}

func splitKey(k string) []string {
	var parts []string
	for _, p := range strings.Split(k, ".") {
		parts = append(parts, strings.Trim(strings.TrimSpace(p), `"'`))
	}
	return parts
}
