package isolation

import (
	"fmt"
	"strings"

	"github.com/hpcctl/hpcctl/internal/config"
)

// ProfileFor returns the profile called name: a built-in one, as the site's [profile.NAME] table
// changes it, or one the site defines on a built-in base.
func ProfileFor(c *config.Config, name string) (Profile, error) {
	builtins := Profiles()
	def, defined := c.Profiles[name]
	p, builtin := builtins[name]
	switch {
	case !builtin && !defined:
		return Profile{}, fmt.Errorf("unknown profile %q: want one of %s", name, strings.Join(c.ProfileNames(), ", "))
	case !defined:
		return p, nil
	case def.Base != "":
		p = builtins[def.Base]
	}
	p.Name = name
	return override(p, def)
}

func override(p Profile, d config.ProfileDef) (Profile, error) {
	for _, f := range []struct {
		dst *bool
		src *bool
	}{
		{&p.PID, d.PID}, {&p.IPC, d.IPC}, {&p.Net, d.Net}, {&p.UTS, d.UTS}, {&p.MinimalDev, d.MinimalDev},
		{&p.PrivateTmp, d.PrivateTmp}, {&p.EmptyHome, d.EmptyHome}, {&p.HostFiles, d.HostFiles},
		{&p.ConfigBinds, d.ConfigBinds}, {&p.ReadOnlyProcSys, d.ReadOnlyProcSys}, {&p.NoNewPrivs, d.NoNewPrivs},
	} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if d.Hostname != nil {
		p.Hostname = *d.Hostname
	}
	if d.Cwd != nil {
		p.Cwd = CwdMode(*d.Cwd)
	}
	if d.Env != nil {
		p.Env = EnvMode(*d.Env)
	}
	if d.Umask != nil {
		p.Umask = -1
		if *d.Umask != "" {
			u, err := config.ParseUmask(*d.Umask)
			if err != nil {
				return p, err
			}
			p.Umask = u
		}
	}
	return p, nil
}

// PolicyFor turns the site's configuration into the policy Build applies.
func PolicyFor(c *config.Config) (Policy, error) {
	pol := Policy{
		Source:            c.Path,
		NoMount:           NoMount{},
		AllowedProfiles:   c.AllowedProfiles,
		AllowedNamespaces: c.AllowedNamespaces,
		NoUserBinds:       !c.UserBinds,
		JobVariables:      c.Environment.JobVariables,
	}
	for name, on := range map[MountName]bool{MountHome: c.MountHome, MountTmp: c.MountTmp, MountProc: c.MountProc, MountSys: c.MountSys, MountDev: c.MountDev, MountHostFiles: c.MountHostFiles} {
		if !on {
			pol.NoMount[name] = true
		}
	}
	binds, err := ParseBinds(c.BindPaths, "/")
	if err != nil {
		return pol, fmt.Errorf("%s: bind_paths: %w", c.Path, err)
	}
	pol.BindPaths = binds
	return pol, nil
}
