package config

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// validate checks every value; the first bad one is returned as a *valueError naming its key.
func (c *Config) validate() error {
	for i, b := range c.BindPaths {
		if err := checkBind(b); err != "" {
			return bad(toml.Key{"bind_paths"}, "entry %d %q: %s", i+1, b, err)
		}
	}
	for _, p := range c.Environment.JobVariables {
		if !validJobPattern(p) {
			return bad(toml.Key{"environment", "job_variables"}, "%q is not a variable name or pattern (NAME, PREFIX_*)", p)
		}
	}
	if d, err := time.ParseDuration(c.Session.IdleTimeout); c.Session.IdleTimeout != "" && (err != nil || d <= 0) {
		return bad(toml.Key{"session", "idle_timeout"}, "%q is not a positive duration (e.g. \"30s\", \"2m\")", c.Session.IdleTimeout)
	}
	if _, err := ParseFUSEServer(string(c.Session.FUSEServer)); err != nil {
		return bad(toml.Key{"session", "fuse_server"}, "%v", err)
	}
	for _, ns := range c.AllowedNamespaces {
		if !slices.Contains(Namespaces, ns) {
			return bad(toml.Key{"allowed_namespaces"}, "unknown namespace %q; want some of %s", ns, strings.Join(Namespaces, ", "))
		}
	}
	for name, p := range c.Profiles {
		if err := p.validate(name); err != nil {
			return err
		}
	}
	for _, p := range c.AllowedProfiles {
		if !c.HasProfile(p) {
			return bad(toml.Key{"allowed_profiles"}, "unknown profile %q; want one of %s", p, strings.Join(c.ProfileNames(), ", "))
		}
	}
	if !c.HasProfile(c.DefaultProfile) {
		return bad(toml.Key{"default_profile"}, "unknown profile %q; want one of %s", c.DefaultProfile, strings.Join(c.ProfileNames(), ", "))
	}
	if c.AllowedProfiles != nil && !slices.Contains(c.AllowedProfiles, c.DefaultProfile) {
		return bad(toml.Key{"default_profile"}, "profile %q is not in allowed_profiles", c.DefaultProfile)
	}
	for _, k := range []struct {
		key   string
		paths []string
	}{
		{"limit_container_paths", c.LimitContainerPaths}, {"squashfuse", optional(c.Squashfuse)}, {"cache_dir", optional(c.CacheDir)},
	} {
		if err := absolute(toml.Key{k.key}, k.paths); err != nil {
			return err
		}
	}
	if err := absolute(toml.Key{"signature", "trusted_keys_dir"}, optional(c.Signature.TrustedKeysDir)); err != nil {
		return err
	}
	if err := absolute(toml.Key{"signature", "allowed_paths"}, c.Signature.AllowedPaths); err != nil {
		return err
	}
	if c.Signature.RequireSigned && c.Signature.TrustedKeysDir == "" {
		return bad(toml.Key{"signature", "require_signed"}, "require_signed needs trusted_keys_dir")
	}
	for _, o := range c.LimitContainerOwners {
		if o == "" || strings.ContainsAny(o, ": \t/") {
			return bad(toml.Key{"limit_container_owners"}, "%q is not a user name or UID", o)
		}
	}
	return nil
}

func optional(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

func absolute(key toml.Key, paths []string) error {
	for _, p := range paths {
		if !path.IsAbs(p) {
			return bad(key, "%q is not an absolute path", p)
		}
	}
	return nil
}

// checkBind checks a "src[:dst[:ro|rw]]" entry; "" means it is fine.
func checkBind(b string) string {
	parts := strings.Split(b, ":")
	switch {
	case len(parts) > 3:
		return "want src[:dst[:ro|rw]]"
	case !path.IsAbs(parts[0]):
		return "the source must be an absolute path"
	case len(parts) > 1 && parts[1] != "" && !path.IsAbs(parts[1]):
		return "the destination must be an absolute path"
	case len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw":
		return "the option must be ro or rw"
	}
	return ""
}

func (p ProfileDef) validate(name string) error {
	key := func(k string) toml.Key { return toml.Key{"profile", name, k} }
	if name == "" || strings.ContainsAny(name, " \t/:,") {
		return bad(toml.Key{"profile", name}, "bad profile name %q", name)
	}
	if p.Base != "" && !slices.Contains(BuiltinProfiles, p.Base) {
		return bad(key("base"), "unknown base profile %q; want one of %s", p.Base, strings.Join(BuiltinProfiles, ", "))
	}
	if p.Base == "" && !slices.Contains(BuiltinProfiles, name) {
		return bad(toml.Key{"profile", name}, "profile %q needs base = one of %s", name, strings.Join(BuiltinProfiles, ", "))
	}
	if p.Cwd != nil && !slices.Contains([]string{"host", "home", "image"}, *p.Cwd) {
		return bad(key("cwd"), "%q: want host, home or image", *p.Cwd)
	}
	if p.Env != nil && !slices.Contains([]string{"host", "clean", "allowlist"}, *p.Env) {
		return bad(key("env"), "%q: want host, clean or allowlist", *p.Env)
	}
	if p.Umask != nil && *p.Umask != "" {
		if _, err := ParseUmask(*p.Umask); err != nil {
			return bad(key("umask"), "%v", err)
		}
	}
	if p.Hostname != nil && (len(*p.Hostname) > 64 || strings.ContainsAny(*p.Hostname, " \t/")) {
		return bad(key("hostname"), "%q is not a host name", *p.Hostname)
	}
	return nil
}

// ParseUmask parses an octal umask such as "022".
func ParseUmask(s string) (int, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("umask %q is not an octal mode like 022", s)
	}
	return int(v), nil
}

// HasProfile reports whether name is a built-in or a defined profile.
func (c *Config) HasProfile(name string) bool {
	_, ok := c.Profiles[name]
	return ok || slices.Contains(BuiltinProfiles, name)
}

// ProfileNames lists the built-in profiles, then the site's own in name order.
func (c *Config) ProfileNames() []string {
	names := append([]string(nil), BuiltinProfiles...)
	var own []string
	for n := range c.Profiles {
		if !slices.Contains(BuiltinProfiles, n) {
			own = append(own, n)
		}
	}
	slices.Sort(own)
	return append(names, own...)
}
