package isolation

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hpcctl/hpcctl/internal/config"
)

// Profile is the data of one isolation profile: which walls the container gets. Each built-in
// profile adds to the one before it; flags add single walls to any of them.
type Profile struct {
	Name string
	// PID, IPC, Net and UTS ask for new namespaces; Net brings up only the loopback interface.
	PID, IPC, Net, UTS bool
	// Hostname is set in the new UTS namespace ("" keeps the host's name there).
	Hostname string
	// MinimalDev gives a tmpfs /dev holding only the host's null, zero, full, random, urandom and
	// tty nodes, a private devpts and /dev/shm, instead of the host's whole /dev.
	MinimalDev bool
	// HostShm binds the host's /dev/shm into a minimal /dev (MPI ranks share memory there).
	HostShm bool
	// PrivateTmp gives /tmp and /var/tmp tmpfs of their own instead of the host's.
	PrivateTmp bool
	// EmptyHome puts an empty tmpfs, owned by the user, at the home path instead of the host home.
	EmptyHome bool
	// Cwd is where the program starts.
	Cwd CwdMode
	// Env is how much of the host environment passes.
	Env EnvMode
	// HostFiles binds the host's /etc/hosts, /etc/localtime and /etc/resolv.conf.
	HostFiles bool
	// ConfigBinds applies the bind paths of hpcctl.conf and $HPCCTL_BIND; explicit --bind always is.
	ConfigBinds bool
	// ReadOnlyProcSys makes /proc/sys read-only (it needs a PID namespace: a /proc of its own).
	ReadOnlyProcSys bool
	// NoNewPrivs sets no_new_privs, for root too.
	NoNewPrivs bool
	// Umask is set for the program; negative keeps the caller's.
	Umask int
}

// CwdMode says where the program starts.
type CwdMode string

// Working directory modes.
const (
	// CwdHost keeps the host's current directory, bound from the host (Apptainer's default).
	CwdHost CwdMode = "host"
	// CwdHome starts in the home directory inside; the host's current directory is not bound.
	CwdHome CwdMode = "home"
	// CwdImage starts in the image's WorkingDir, / when it sets none.
	CwdImage CwdMode = "image"
)

// DefaultHostname is the host name of an --isolate container.
const DefaultHostname = "hpcctl"

// Built-in profile names, from config, which lists them (config.BuiltinProfiles).
const (
	ProfileDefault    = config.ProfileDefault
	ProfileContain    = config.ProfileContain
	ProfileContainAll = config.ProfileContainAll
	ProfileIsolate    = config.ProfileIsolate
)

// Profiles returns the built-in profiles by name.
func Profiles() map[string]Profile {
	def := Profile{Name: ProfileDefault, Cwd: CwdHost, Env: EnvHost, HostFiles: true, ConfigBinds: true, Umask: -1}
	contain := def
	contain.Name, contain.MinimalDev, contain.PrivateTmp, contain.EmptyHome, contain.Cwd = ProfileContain, true, true, true, CwdHome
	all := contain
	all.Name, all.PID, all.IPC, all.Env = ProfileContainAll, true, true, EnvClean
	iso := all
	iso.Name, iso.Net, iso.UTS, iso.Hostname, iso.Cwd, iso.Env = ProfileIsolate, true, true, DefaultHostname, CwdImage, EnvAllowList
	iso.HostFiles, iso.ConfigBinds, iso.ReadOnlyProcSys, iso.NoNewPrivs, iso.Umask = false, false, true, true, 0o022
	return map[string]Profile{def.Name: def, contain.Name: contain, all.Name: all, iso.Name: iso}
}

// Switches are the single walls the command line adds to a profile.
type Switches struct {
	PID, IPC, Net, UTS bool
	// Hostname implies UTS.
	Hostname string
	// NoPID takes the PID namespace away from a profile that has one (--no-pid).
	NoPID bool
}

// With returns p with the switches' walls added.
func (p Profile) With(s Switches) Profile {
	p.PID = (p.PID || s.PID) && !s.NoPID
	p.IPC = p.IPC || s.IPC
	p.Net = p.Net || s.Net
	p.UTS = p.UTS || s.UTS || s.Hostname != ""
	if s.Hostname != "" {
		p.Hostname = s.Hostname
	}
	return p
}

// Namespaces lists the optional namespaces the profile asks for, by their hpcctl.conf names.
func (p Profile) Namespaces() []string {
	var ns []string
	for _, n := range []struct {
		on   bool
		name string
	}{{p.PID, "pid"}, {p.IPC, "ipc"}, {p.Net, "net"}, {p.UTS, "uts"}} {
		if n.on {
			ns = append(ns, n.name)
		}
	}
	return ns
}

// NoMount names mounts to leave out (--no-mount, and the site's mount_* = false).
type NoMount map[MountName]bool

// MountName names one of the mounts a profile makes, as --no-mount takes it.
type MountName string

// Mount names.
const (
	MountProc      MountName = "proc"
	MountSys       MountName = "sys"
	MountDev       MountName = "dev"
	MountDevpts    MountName = "devpts"
	MountHome      MountName = "home"
	MountTmp       MountName = "tmp"
	MountCwd       MountName = "cwd"
	MountHostFiles MountName = "hostfiles"
	MountBindPaths MountName = "bind-paths"
)

// noMountNames are what --no-mount accepts, with what each leaves out.
var noMountNames = map[MountName]string{
	MountProc: "/proc", MountSys: "/sys", MountDev: "/dev", MountDevpts: "/dev/pts (of a minimal /dev)",
	MountHome: "the home directory", MountTmp: "/tmp and /var/tmp", MountCwd: "the current directory",
	MountHostFiles: "/etc/hosts, /etc/localtime and /etc/resolv.conf", MountBindPaths: "the configured bind paths",
}

// ParseNoMount parses --no-mount values, each a comma-separated list of names or of absolute
// paths, as Apptainer takes them: /etc/hosts, /etc/localtime, /etc/resolv.conf, or the
// destination of a configured bind path.
func ParseNoMount(values []string) (NoMount, error) {
	nm := NoMount{}
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if strings.HasPrefix(name, "/") {
				nm[MountName(path.Clean(name))] = true
				continue
			}
			if _, ok := noMountNames[MountName(name)]; !ok {
				known := make([]string, 0, len(noMountNames))
				for k := range noMountNames {
					known = append(known, string(k))
				}
				sort.Strings(known)
				return nil, fmt.Errorf("--no-mount %q: unknown mount %q; known: %s, or an absolute path (/etc/hosts, a bind path's destination)", v, name, strings.Join(known, ", "))
			}
			nm[MountName(name)] = true
		}
	}
	return nm, nil
}
