package isolation

import (
	"fmt"
	"slices"
	"strings"
)

// Policy is what the site's hpcctl.conf decides about launches. The zero Policy allows everything
// and adds nothing.
type Policy struct {
	// Source names where the policy comes from, for error messages ("/etc/hpcctl/hpcctl.conf").
	Source string
	// NoMount lists the system mounts the site turned off (mount_home = false, ...).
	NoMount NoMount
	// BindPaths are bound into every container whose profile takes host defaults.
	BindPaths []Bind
	// AllowedProfiles and AllowedNamespaces, when not nil, are all that users may ask for.
	AllowedProfiles   []string
	AllowedNamespaces []string
	// NoUserBinds refuses --bind and $HPCCTL_BIND.
	NoUserBinds bool
	// JobVariables pass from the host under every profile (hpcctl.conf's [environment]).
	JobVariables JobVariables
}

// NotAllowedError marks a launch the site's policy refuses.
type NotAllowedError struct{ Msg string }

func (e NotAllowedError) Error() string { return e.Msg }

func (pol Policy) check(p Profile, o Options) error {
	src := pol.Source
	if src == "" {
		src = "hpcctl.conf"
	}
	if pol.AllowedProfiles != nil && !slices.Contains(pol.AllowedProfiles, p.Name) {
		return NotAllowedError{fmt.Sprintf("profile %q is not allowed on this machine (allowed_profiles in %s: %s); choose one of those or ask the administrators",
			p.Name, src, listOrNone(pol.AllowedProfiles))}
	}
	if pol.AllowedNamespaces != nil {
		for _, ns := range p.Namespaces() {
			if !slices.Contains(pol.AllowedNamespaces, ns) {
				return NotAllowedError{fmt.Sprintf("the %s namespace (profile %q or its flags) is not allowed on this machine (allowed_namespaces in %s: %s); drop the flag or choose a weaker profile",
					ns, p.Name, src, listOrNone(pol.AllowedNamespaces))}
			}
		}
	}
	if pol.NoUserBinds && (len(o.Binds) > 0 || len(o.EnvBinds) > 0) {
		return NotAllowedError{fmt.Sprintf("user binds are disabled on this machine (user_binds = false in %s); drop --bind and $HPCCTL_BIND", src)}
	}
	return nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
