package isolation

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
	// JobDirs are the MPI launcher's session directories (PMIx's shared-memory store) that an MPI
	// rank binds at the same path: the caller checks they are the user's own directories.
	JobDirs []string
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
	Binds []Bind
	// EnvBinds come from $HPCCTL_BIND; like the configured bind paths, profiles that shut out
	// host defaults (--isolate) ignore them.
	EnvBinds []Bind
	NoHome   bool
	Home     string // --home src[:dst]
	Pwd      string // --pwd
	CleanEnv bool
	// Env holds explicit NAME=value settings, --env-file contents first, then --env.
	Env      []string
	Writable bool
	// NoPrivs drops root's capabilities too and sets no_new_privs (--no-privs); a plain user
	// never keeps any.
	NoPrivs bool
	// Switches add single walls to the profile (--pid, --net, --hostname, ...).
	Switches Switches
	// NoJobEnv drops the job's variables (--no-job-env): under a profile that cleans the
	// environment, no SLURM_*, PMI_*, ... passes, and an MPI rank keeps the profile's walls.
	NoJobEnv bool
	NoMount  NoMount
	Overlays []spec.Overlay
	// NoEnv names host variables not to pass (--no-env).
	NoEnv []string
	// NoEval keeps --env, --env-file and APPTAINERENV_ values unevaluated (--no-eval).
	NoEval bool
	// NoUmask starts the program with umask 022 instead of the caller's (--no-umask).
	NoUmask bool
	// Scratch are directories made fresh for this container (--scratch): under Workdir when it
	// is set (the caller creates Workdir/scratch/NAME), else a private tmpfs.
	Scratch []string
	// Workdir holds the scratch directories and, under a profile with a private /tmp, its /tmp
	// and /var/tmp (Workdir/tmp, Workdir/var_tmp), as Apptainer's --workdir.
	Workdir string
	// Devices are the binds of the GPU flags (--nv, --rocm, --device), made after every other
	// bind; DeviceEnv their variables (a CDI spec's). DeviceLibs puts LibDir, where they bind the
	// driver's libraries, on LD_LIBRARY_PATH after the image's own directories.
	Devices    []spec.Mount
	DeviceEnv  []string
	DeviceLibs string
	// App is the SCIF app of an Apptainer image (--app): see AppArgv.
	App string
	// DropCaps are capabilities root gives up (--drop-caps); with KeepSomeCaps root keeps the
	// others even under --no-privs (--no-privs --add-caps).
	DropCaps     []uint
	KeepSomeCaps bool
	// RunscriptTimeout bounds an Apptainer image's environment scripts (0: no bound).
	RunscriptTimeout time.Duration
	// Fakeroot runs a plain user's program as root in a user namespace of its own (--fakeroot);
	// nil, or real root, changes nothing.
	Fakeroot *Fakeroot
	// WritableSandbox runs a sandbox directory read-write (--writable); the caller checks the
	// directory is the user's.
	WritableSandbox bool
}

// Image is what the profile needs from the image.
type Image struct {
	Path    string
	Backend spec.Backend
	Offset  int64
	Size    int64
	// Env is the OCI config's Env; Apptainer images set theirs from /.singularity.d/env at run time.
	Env []string
	// WorkingDir is the OCI config's WorkingDir ("" when unset).
	WorkingDir string
	// Entrypoint and Cmd are the OCI config's, for run.
	Entrypoint, Cmd []string
	// OCIConfig is false for images without an OCI config (made by Apptainer or SingularityCE, or
	// bare squashfs and sandbox directories), which keep their runscript and environment scripts
	// under /.singularity.d instead.
	OCIConfig bool
}

// Effective is the profile a launch runs with: p as an MPI rank needs it when the host
// environment is an MPI launcher's (and the user did not drop the job's variables), then the
// single walls the user asked for.
func Effective(p Profile, o Options, hostEnv []string) Profile {
	if !o.NoJobEnv && IsMPIRank(hostEnv) {
		p = p.ForMPI()
	}
	return p.With(o.Switches)
}

// ShapeOf is the namespaces and ID maps Build gives a launch with profile p (switches applied)
// by the user uid:gid. A plain user gets a user namespace that maps only their own IDs; root
// needs none.
func ShapeOf(p Profile, uid, gid int) spec.Shape {
	sh := spec.Shape{Namespaces: spec.Namespaces{Mount: true, PID: p.PID, IPC: p.IPC, Net: p.Net, UTS: p.UTS}}
	if uid != 0 {
		sh.Namespaces.User = true
		sh.UIDMap = []spec.IDMap{{ContainerID: uint32(uid), HostID: uint32(uid), Size: 1}}
		sh.GIDMap = []spec.IDMap{{ContainerID: uint32(gid), HostID: uint32(gid), Size: 1}}
	}
	return sh
}

// Build turns a profile, the site's policy and the user's options into the Spec of one launch. A
// plain user gets a user namespace that maps only their own IDs; root runs as root with its
// capabilities. argv is the program to run.
func Build(p Profile, pol Policy, h Host, o Options, img Image, argv []string) (*spec.Spec, error) {
	p = Effective(p, o, h.Env)
	if err := pol.check(p, o); err != nil {
		return nil, err
	}
	nm := NoMount{}
	for k := range o.NoMount {
		nm[k] = true
	}
	for k := range pol.NoMount {
		nm[k] = true
	}
	home, homeSrc, err := homeDirs(h, o)
	if err != nil {
		return nil, err
	}
	persistent := slices.ContainsFunc(o.Overlays, func(ov spec.Overlay) bool { return !ov.ReadOnly })
	if persistent && o.Writable {
		return nil, errors.New("--writable-tmpfs and a writable --overlay both ask for a writable root: give one (or the overlay with :ro)")
	}
	if err = checkWritableSandbox(o, img); err != nil {
		return nil, err
	}
	sh := ShapeFor(p, h.UID, h.GID, o.Fakeroot)
	// Inside, the IDs the program has are the container's: root's under --fakeroot (tmpfs uid=
	// options are read in the namespace, where the user's own ID is unmapped).
	inside := h
	if fakerootOn(h, o) {
		inside.UID, inside.GID = 0, 0
	}
	s := &spec.Spec{
		Namespaces: sh.Namespaces,
		UIDMap:     sh.UIDMap,
		GIDMap:     sh.GIDMap,
		Hostname:   p.Hostname,
		RootFS:     spec.RootFS{Backend: img.Backend, Image: img.Path, Offset: img.Offset, Size: img.Size, Writable: o.WritableSandbox},
		Args:       argv,
		// Apptainer mounts no overlay by default: the image is read-only.
		WritableRoot:    o.Writable || persistent || o.WritableSandbox,
		Overlays:        o.Overlays,
		NoNewPrivileges: p.NoNewPrivs || o.NoPrivs,
	}
	for _, ov := range o.Overlays {
		// ParseOverlaysWith numbers image layers from 1 in order: they come first in Images.
		if ov.Image > 0 {
			s.Images = append(s.Images, spec.Image{Path: ov.Dir})
		}
	}
	if p.Umask >= 0 {
		u := uint32(p.Umask)
		s.Umask = &u
	} else if o.NoUmask {
		u := uint32(0o022)
		s.Umask = &u
	}
	if inside.UID != 0 {
		s.Identity = identity(h, home)
	} else {
		// --no-privs --add-caps keeps root's capabilities but for DropCaps (no_new_privs stays).
		s.KeepCapabilities = !o.NoPrivs || o.KeepSomeCaps
		if s.KeepCapabilities {
			s.DropCapabilities = o.DropCaps
		}
		s.Identity = rootIdentity(home)
	}
	s.Mounts = workdirTmp(systemMounts(p, nm), o.Workdir)
	if p.ConfigBinds && !nm[MountBindPaths] {
		appendBinds(s, slices.DeleteFunc(slices.Clone(pol.BindPaths), func(b Bind) bool { return nm[MountName(b.Destination)] }))
	}
	s.Mounts = append(s.Mounts, homeMounts(p, inside, o, nm, home, homeSrc)...)
	s.Cwd, s.CwdFallback = workingDir(p, h, o, img, nm, home, s)
	if p.ConfigBinds {
		appendBinds(s, o.EnvBinds)
	}
	appendBinds(s, o.Binds)
	s.Mounts = append(s.Mounts, o.Devices...)
	s.Mounts = append(s.Mounts, scratchMounts(o, inside)...)
	mpi := !o.NoJobEnv && IsMPIRank(h.Env)
	if mpi {
		s.Mounts = append(s.Mounts, jobDirMounts(h.JobDirs)...)
	}
	mode := p.Env
	if o.CleanEnv && mode == EnvHost {
		mode = EnvClean
	}
	var job JobVariables
	if !o.NoJobEnv {
		job = pol.JobVariables
	}
	extra := append(containerVariables(img.Path), deviceVariables(o, img.Env)...)
	if mpi {
		extra = append(extra, mpiSettings(s.Namespaces, h.Env, img.Env)...)
	}
	env, err := ComputeEnv(EnvInput{
		Host: h.Env, Image: img.Env, Mode: mode, Home: home, Set: o.Env, Job: job, Extra: extra,
		NoEnv: o.NoEnv, NoEval: o.NoEval,
	})
	if err != nil {
		return nil, err
	}
	s.Env = env.Env
	// Argv wraps the program of an image without an OCI config in apptainerEnv; the explicit
	// settings must be set again after the image's scripts.
	if !img.OCIConfig && len(argv) > 2 && argv[2] == apptainerEnv {
		s.Args = slices.Clone(argv)
		s.Args[2] = apptainerScript(env, o.RunscriptTimeout, o.App)
	}
	return s, s.Validate()
}

// containerVariables tell the program which image it runs in, under hpcctl's names and under
// Apptainer's and SingularityCE's (scripts test $APPTAINER_CONTAINER or $SINGULARITY_CONTAINER
// to know they run in a container).
func containerVariables(image string) []string {
	var out []string
	for _, p := range []string{"HPCCTL_", "APPTAINER_", "SINGULARITY_"} {
		out = append(out, p+"CONTAINER="+image, p+"NAME="+path.Base(image))
	}
	return out
}

// deviceVariables are the GPU flags' variables: LD_LIBRARY_PATH ending in the driver's library
// directory (the image's own directories keep precedence), and a CDI spec's.
func deviceVariables(o Options, imageEnv []string) []string {
	out := slices.Clone(o.DeviceEnv)
	if o.DeviceLibs == "" {
		return out
	}
	dirs := []string{o.DeviceLibs}
	for _, kv := range imageEnv {
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok && v != "" {
			dirs = []string{v, o.DeviceLibs}
		}
	}
	return append(out, "LD_LIBRARY_PATH="+strings.Join(dirs, ":"))
}

// WorkdirPaths are the host directories --workdir gives to a launch: the scratch directories
// and, for a private /tmp, tmp and var_tmp. The caller creates them, with the user's rights.
func WorkdirPaths(o Options) []string {
	if o.Workdir == "" {
		return nil
	}
	dirs := []string{path.Join(o.Workdir, "tmp"), path.Join(o.Workdir, "var_tmp")}
	for _, d := range o.Scratch {
		dirs = append(dirs, scratchDir(o.Workdir, d))
	}
	return dirs
}

// scratchDir is where a scratch directory lives under the workdir: its path inside, flattened.
func scratchDir(workdir, dest string) string {
	return path.Join(workdir, "scratch", strings.ReplaceAll(strings.Trim(path.Clean(dest), "/"), "/", "_"))
}

// scratchMounts are the --scratch directories: private to this container, empty at start.
func scratchMounts(o Options, h Host) []spec.Mount {
	var m []spec.Mount
	for _, d := range o.Scratch {
		d = path.Clean(d)
		if o.Workdir != "" {
			m = append(m, spec.Mount{Kind: spec.KindBind, Source: scratchDir(o.Workdir, d), Destination: d})
			continue
		}
		m = append(m, spec.Mount{Kind: spec.KindTmpfs, Destination: d, Data: fmt.Sprintf("mode=0700,uid=%d,gid=%d", h.UID, h.GID)})
	}
	return m
}

// workdirTmp puts the workdir's tmp and var_tmp in place of a private /tmp and /var/tmp, so that
// what the program writes there survives it (Apptainer's --workdir with --contain).
func workdirTmp(ms []spec.Mount, workdir string) []spec.Mount {
	if workdir == "" {
		return ms
	}
	for i, m := range ms {
		if m.Kind == spec.KindTmpfs && (m.Destination == "/tmp" || m.Destination == "/var/tmp") {
			src := path.Join(workdir, strings.ReplaceAll(strings.TrimPrefix(m.Destination, "/"), "/", "_"))
			ms[i] = spec.Mount{Kind: spec.KindBind, Source: src, Destination: m.Destination}
		}
	}
	return ms
}

// appendBinds adds the binds to s.Mounts, and the images of image binds to s.Images.
func appendBinds(s *spec.Spec, binds []Bind) {
	for _, b := range binds {
		if b.Image != nil {
			s.Images = append(s.Images, spec.Image{Path: b.Source, Partition: b.Image.Partition})
			s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindImage, Source: b.Image.Src, Destination: b.Destination, ReadOnly: true, Image: len(s.Images)})
			continue
		}
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: b.Source, Destination: b.Destination, ReadOnly: b.ReadOnly, Recursive: true})
	}
}

// homeMounts puts the home directory in place: an explicit --home is bound; otherwise the
// profile's empty tmpfs (mode 0700: the user's own, as a home is) or the host home.
func homeMounts(p Profile, h Host, o Options, nm NoMount, home, src string) []spec.Mount {
	switch {
	case o.NoHome || nm[MountHome]:
		return nil
	case o.Home == "" && p.EmptyHome:
		data := fmt.Sprintf("mode=0700,uid=%d,gid=%d", h.UID, h.GID)
		return []spec.Mount{{Kind: spec.KindTmpfs, Destination: home, Data: data}}
	case src != "":
		return []spec.Mount{{Kind: spec.KindBind, Source: src, Destination: home, Recursive: true}}
	}
	return nil
}

// systemMounts are the host directories and files a container sees, and what the profile puts
// in their place. Without a PID namespace /proc is bound, not mounted fresh (likewise /sys
// without a network namespace): a user namespace does not own the host's PID and network
// namespaces, so the kernel refuses new proc and sysfs mounts there.
func systemMounts(p Profile, nm NoMount) []spec.Mount {
	var m []spec.Mount
	if !nm[MountProc] {
		if p.PID {
			m = append(m, spec.Mount{Kind: spec.KindProc, Destination: "/proc"})
			if p.ReadOnlyProcSys {
				m = append(m, spec.Mount{Kind: spec.KindBind, Source: "/proc/sys", SourceInside: true, Destination: "/proc/sys", ReadOnly: true})
			}
		} else {
			m = append(m, spec.Mount{Kind: spec.KindBind, Source: "/proc", Destination: "/proc", Recursive: true})
		}
	}
	if !nm[MountSys] {
		if p.Net {
			m = append(m, spec.Mount{Kind: spec.KindSysfs, Destination: "/sys", ReadOnly: true})
		} else {
			m = append(m, spec.Mount{Kind: spec.KindBind, Source: "/sys", Destination: "/sys", Recursive: true})
		}
	}
	if !nm[MountDev] {
		if p.MinimalDev {
			m = append(m, minimalDev(nm[MountDevpts], p.HostShm)...)
		} else {
			m = append(m, spec.Mount{Kind: spec.KindBind, Source: "/dev", Destination: "/dev", Recursive: true})
		}
	}
	if p.HostFiles && !nm[MountHostFiles] {
		for _, f := range []string{"/etc/hosts", "/etc/localtime", "/etc/resolv.conf"} {
			if nm[MountName(f)] {
				continue
			}
			m = append(m, spec.Mount{Kind: spec.KindBind, Source: f, Destination: f, ReadOnly: true, Optional: true})
		}
	}
	if !nm[MountTmp] {
		for _, d := range []string{"/tmp", "/var/tmp"} {
			if p.PrivateTmp {
				m = append(m, spec.Mount{Kind: spec.KindTmpfs, Destination: d, Data: "mode=1777"})
			} else {
				m = append(m, spec.Mount{Kind: spec.KindBind, Source: d, Destination: d, Recursive: true, Optional: true})
			}
		}
	}
	return m
}

// devNodes are the host device nodes a minimal /dev holds, bound onto files of its tmpfs (a user
// namespace cannot mknod them). /dev/ptmx opens the devpts instance at the "pts" beside it
// (Linux 4.7 and later), so the host's node serves the container's own /dev/pts.
var devNodes = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

func minimalDev(noDevpts, hostShm bool) []spec.Mount {
	m := []spec.Mount{{Kind: spec.KindTmpfs, Destination: "/dev", Data: "mode=0755,size=1m"}}
	for _, d := range devNodes {
		m = append(m, spec.Mount{Kind: spec.KindBind, Source: d, Destination: d})
	}
	if !noDevpts {
		m = append(m,
			spec.Mount{Kind: spec.KindDevpts, Destination: "/dev/pts", Data: "newinstance,ptmxmode=0666,mode=0620"},
			spec.Mount{Kind: spec.KindBind, Source: "/dev/ptmx", Destination: "/dev/ptmx"})
	}
	if hostShm {
		m = append(m, spec.Mount{Kind: spec.KindBind, Source: "/dev/shm", Destination: "/dev/shm", Recursive: true})
	} else {
		m = append(m, spec.Mount{Kind: spec.KindTmpfs, Destination: "/dev/shm", Data: "mode=1777"})
	}
	for _, l := range [][2]string{{"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"}, {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"}} {
		m = append(m, spec.Mount{Kind: spec.KindSymlink, Source: l[1], Destination: l[0]})
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
	// --home / (Apptainer's way of saying "no home of mine"): HOME is /, nothing is bound, since
	// a bind cannot replace the container's root.
	if o.NoHome || src == "/" {
		src = ""
	}
	return home, src, nil
}

// systemDirs are never bound as the working directory: binding the host's /usr over the image's
// would replace the image.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys", "/usr", "/var"}

// workingDir places the program. --pwd sets it outright. The default profile keeps the current
// directory: it is bound from the host unless a bind already brings it or it is a system
// directory; in that case the child falls back to home with a warning when it is missing in the
// container. The contained profiles start in the home inside, --isolate in the image's WorkingDir.
func workingDir(p Profile, h Host, o Options, img Image, nm NoMount, home string, s *spec.Spec) (cwd, fallback string) {
	if o.Pwd != "" {
		return path.Clean(o.Pwd), ""
	}
	switch p.Cwd {
	case CwdImage:
		if img.WorkingDir != "" && path.IsAbs(img.WorkingDir) {
			return path.Clean(img.WorkingDir), "/"
		}
		return "/", ""
	case CwdHome:
		return home, "/"
	}
	cwd = path.Clean(h.Cwd)
	if !path.IsAbs(cwd) {
		return "/", ""
	}
	if nm[MountCwd] || covered(cwd, s.Mounts) || isSystemDir(cwd) || (o.NoHome && within(cwd, h.User.Home)) {
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

// rootIdentity gives an image without a root entry one (whoami, ssh and Python's getpass fail
// without it); an image's own root entry stays.
func rootIdentity(home string) *spec.Identity {
	return &spec.Identity{Passwd: "root:x:0:0:root:" + home + ":/bin/sh", Groups: []string{"root:x:0:"}, AddMissing: true}
}

func shellOr(sh string) string {
	if sh == "" {
		return "/bin/sh"
	}
	return sh
}
