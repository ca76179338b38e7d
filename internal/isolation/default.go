package isolation

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Host holds the facts about the launching user and machine that a profile needs.
type Host struct {
	UID, GID int
	// Groups are the supplementary group IDs with their names (for /etc/group in the container).
	Groups []Group
	User   User
	Env    []string
	Cwd    string
}

// User is the launching user's passwd entry.
type User struct {
	Name, Gecos, Home, Shell string
}

// Group is one of the user's groups.
type Group struct {
	Name string
	GID  int
}

// Options are the user's choices from the command line.
type Options struct {
	Binds    []Bind
	NoHome   bool
	Home     string // --home src[:dst]
	Pwd      string // --pwd
	CleanEnv bool
	// Env holds explicit NAME=value settings, --env-file contents first, then --env.
	Env      []string
	Writable bool
}

// Image is what the profile needs from the image.
type Image struct {
	Path    string
	Backend spec.Backend
	Offset  int64
	Size    int64
	// Env is the OCI config's Env; Apptainer images set theirs from /.singularity.d/env at run time.
	Env []string
}

// Default builds the default profile, "a virtualenv on steroids" as Apptainer users know it: same
// UID and GID, the host's network and PID space, $HOME, /tmp, /var/tmp, the current directory,
// /proc, /sys, /dev, /etc/hosts, /etc/localtime and /etc/resolv.conf bound from the host, and the
// host environment minus the variables the image must own. A plain user gets a user namespace that
// maps only their own IDs; root runs as root with its capabilities. argv is the program to run.
func Default(h Host, o Options, img Image, argv []string) (*spec.Spec, error) {
	home, homeSrc, err := homeDirs(h, o)
	if err != nil {
		return nil, err
	}
	s := &spec.Spec{
		Namespaces: spec.Namespaces{Mount: true},
		RootFS:     spec.RootFS{Backend: img.Backend, Image: img.Path, Offset: img.Offset, Size: img.Size},
		Args:       argv,
		// Apptainer mounts no overlay by default: the image is read-only.
		WritableRoot: o.Writable,
	}
	if h.UID != 0 {
		s.Namespaces.User = true
		s.UIDMap = []spec.IDMap{{ContainerID: uint32(h.UID), HostID: uint32(h.UID), Size: 1}}
		s.GIDMap = []spec.IDMap{{ContainerID: uint32(h.GID), HostID: uint32(h.GID), Size: 1}}
		s.Identity = identity(h, home)
	} else {
		s.KeepCapabilities = true
	}
	s.Mounts = systemMounts()
	if homeSrc != "" {
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: homeSrc, Destination: home, Recursive: true})
	}
	s.Cwd, s.CwdFallback = workingDir(h, o, home, s)
	for _, b := range o.Binds {
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: b.Source, Destination: b.Destination, ReadOnly: b.ReadOnly, Recursive: true})
	}
	s.Env, err = Environment(EnvInput{
		Host: h.Env, Image: img.Env, CleanEnv: o.CleanEnv, Home: home, Set: o.Env,
		Extra: []string{"HPCCTL_CONTAINER=" + img.Path, "HPCCTL_NAME=" + path.Base(img.Path)},
	})
	if err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// systemMounts are the host directories and files every default container sees. /proc and /sys are
// bound, not mounted fresh: a user namespace does not own the host's PID and network namespaces,
// so the kernel refuses new proc and sysfs mounts there.
func systemMounts() []spec.Mount {
	m := []spec.Mount{
		{Kind: spec.KindBind, Source: "/proc", Destination: "/proc", Recursive: true},
		{Kind: spec.KindBind, Source: "/sys", Destination: "/sys", Recursive: true},
		{Kind: spec.KindBind, Source: "/dev", Destination: "/dev", Recursive: true},
	}
	for _, f := range []string{"/etc/hosts", "/etc/localtime", "/etc/resolv.conf"} {
		m = append(m, spec.Mount{Kind: spec.KindBind, Source: f, Destination: f, ReadOnly: true, Optional: true})
	}
	for _, d := range []string{"/tmp", "/var/tmp"} {
		m = append(m, spec.Mount{Kind: spec.KindBind, Source: d, Destination: d, Recursive: true, Optional: true})
	}
	return m
}

// homeDirs returns the home directory inside the container and the host directory bound there
// ("" for none).
func homeDirs(h Host, o Options) (home, src string, err error) {
	home, src = h.User.Home, h.User.Home
	if o.Home != "" {
		s, d, found := strings.Cut(o.Home, ":")
		if s == "" || (found && d == "") {
			return "", "", fmt.Errorf("--home %q: want src[:dst]", o.Home)
		}
		if !path.IsAbs(s) {
			s = path.Join(h.Cwd, s)
		}
		src, home = path.Clean(s), path.Clean(s)
		if found {
			if !path.IsAbs(d) {
				return "", "", fmt.Errorf("--home %q: destination must be an absolute path", o.Home)
			}
			home = path.Clean(d)
		}
	}
	if home == "" || !path.IsAbs(home) {
		return "", "", fmt.Errorf("home directory %q is not an absolute path; pass --home", home)
	}
	if o.NoHome {
		src = ""
	}
	return home, src, nil
}

// systemDirs are never bound as the working directory: binding the host's /usr over the image's
// would replace the image.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys", "/usr", "/var"}

// workingDir keeps the current directory: it is bound from the host unless a bind already brings
// it or it is a system directory; in that case the child falls back to home with a warning when it
// is missing in the container. --pwd sets it outright.
func workingDir(h Host, o Options, home string, s *spec.Spec) (cwd, fallback string) {
	if o.Pwd != "" {
		return path.Clean(o.Pwd), ""
	}
	cwd = path.Clean(h.Cwd)
	if !path.IsAbs(cwd) {
		return "/", ""
	}
	if covered(cwd, s.Mounts) || isSystemDir(cwd) || (o.NoHome && within(cwd, h.User.Home)) {
		return cwd, fallbackDir(home)
	}
	s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: cwd, Destination: cwd, Recursive: true})
	return cwd, fallbackDir(home)
}

func fallbackDir(home string) string {
	if home == "" {
		return "/"
	}
	return home
}

// covered reports whether p lies under an earlier mount's destination: either that bind already
// shows it (a bind of a directory onto the same path), or a mount point for it could not be made.
func covered(p string, mounts []spec.Mount) bool {
	for _, m := range mounts {
		if m.Kind == spec.KindBind && within(p, m.Destination) {
			return true
		}
	}
	return false
}

func isSystemDir(p string) bool {
	if p == "/" {
		return true
	}
	for _, d := range systemDirs {
		if within(p, d) {
			return true
		}
	}
	return false
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// identity gives the container's /etc/passwd and /etc/group the user's entries, as Apptainer does.
// Inside a user namespace that maps one GID, supplementary groups show as the overflow group
// (nogroup); their lines are still written so that names resolve for the IDs the user sees outside.
func identity(h Host, home string) *spec.Identity {
	id := &spec.Identity{Passwd: fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", h.User.Name, h.UID, h.GID, h.User.Gecos, home, shellOr(h.User.Shell))}
	seen := map[int]bool{}
	for _, g := range h.Groups {
		if seen[g.GID] || g.Name == "" {
			continue
		}
		seen[g.GID] = true
		id.Groups = append(id.Groups, g.Name+":x:"+strconv.Itoa(g.GID)+":"+h.User.Name)
	}
	return id
}

func shellOr(sh string) string {
	if sh == "" {
		return "/bin/sh"
	}
	return sh
}
