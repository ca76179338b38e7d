package child

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// source is an opened bind source; fd -1 means an optional source that is missing.
type source struct {
	fd  int
	dir bool
}

type sources []source

func (ss sources) close() {
	for _, s := range ss {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
	}
}

// openSources opens every bind source before anything is mounted, with the user's own rights (the
// child holds no DAC capability), so that a source the user cannot reach fails here, and so that
// the staging tmpfs cannot hide one.
func openSources(ms []spec.Mount, log *stepLog) (sources, error) {
	ss := make(sources, len(ms))
	for i, m := range ms {
		ss[i].fd = -1
		if m.Kind != spec.KindBind || m.SourceInside {
			continue
		}
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil && skipOptional(m, err) {
			log.skip(m, err)
			continue
		}
		if err != nil {
			ss.close()
			return nil, fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			ss.close()
			return nil, fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		ss[i] = source{fd: fd, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}
	}
	return ss, nil
}

// applyMounts performs the Spec's mounts in order inside the root open as root. Destinations were
// created in the overlay's upper layer beforehand (prepareUpper); here they are only resolved, inside
// the root, so that a later mount is placed on top of an earlier one as the Spec orders. Mount
// points under a tmpfs of the Spec (a minimal /dev) are created in that tmpfs.
//
// In a writable sandbox (sandbox true) nothing made the mount points beforehand, and hpcctl does
// not write into the user's directory: a mount whose mount point is missing there is skipped with
// a warning, as Apptainer's --writable does.
func applyMounts(root int, ms []spec.Mount, ss sources, images extraImages, sandbox bool, log *stepLog) error {
	under := newUnderlays()
	defer under.close()
	for i, m := range ms {
		if skipped(m, ss[i]) {
			continue
		}
		create := mount.CreateNothing
		covering := coveringKind(ms, i)
		if covering == spec.KindTmpfs {
			create = mount.CreateFile
			if isDirMount(m, ss[i]) {
				create = mount.CreateDir
			}
		}
		if (covering == spec.KindBind || covering == spec.KindImage) && !m.Optional && m.Kind != spec.KindSymlink {
			// A bind's host directory may lack the mount point (prepareUpper made it in the
			// layer the bind now covers): see underlays.
			if err := under.mountPoint(root, m, isDirMount(m, ss[i]), log); err != nil {
				return fmt.Errorf("mount point %s: %w", m.Destination, err)
			}
		}
		err := applyMount(root, m, ss[i], images, create)
		if err != nil && skipOptional(m, err) {
			log.skip(m, err)
			continue
		}
		if err != nil && sandbox && create == mount.CreateNothing && m.Kind != spec.KindSymlink && errors.Is(err, unix.ENOENT) {
			fmt.Fprintf(os.Stderr, "hpcctl: warning: --writable: %s does not exist in the sandbox, so nothing is mounted there (create it in the sandbox to have it)\n", m.Destination)
			log.skip(m, err)
			continue
		}
		log.mount(m, err)
		if err != nil {
			return optionalFailed(m, err)
		}
	}
	return under.seal(log)
}

// optionalFailed says, for an optional mount, that it failed for another reason than a missing
// path, which would have skipped it.
func optionalFailed(m spec.Mount, err error) error {
	if !m.Optional {
		return err
	}
	return fmt.Errorf("optional %s mount of %s at %s (skipped only when missing): %w", m.Kind, m.Source, m.Destination, err)
}

// mountFlags are the mount(2) flags applyMount uses for a mount of the Spec (before a read-only
// remount); the step log prints them.
func mountFlags(m spec.Mount) uintptr {
	switch m.Kind {
	case spec.KindBind:
		if m.Recursive {
			return unix.MS_BIND | unix.MS_REC
		}
		return unix.MS_BIND
	case spec.KindProc, spec.KindSysfs:
		return unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	case spec.KindTmpfs:
		// Homes and /tmp hold scripts and virtual environments: no noexec.
		return unix.MS_NOSUID | unix.MS_NODEV
	case spec.KindDevpts:
		return unix.MS_NOSUID | unix.MS_NOEXEC
	}
	return 0
}

// skipped is an optional bind whose source is missing.
func skipped(m spec.Mount, src source) bool {
	return m.Kind == spec.KindBind && !m.SourceInside && src.fd < 0
}

// coveringKind is the kind of the innermost earlier mount whose destination holds ms[i]'s, ""
// when the destination lies in the container root itself.
func coveringKind(ms []spec.Mount, i int) spec.MountKind {
	var kind spec.MountKind
	depth := -1
	for _, m := range ms[:i] {
		if m.Kind == spec.KindSymlink || m.Destination == ms[i].Destination || !within(ms[i].Destination, m.Destination) {
			continue
		}
		if d := len(m.Destination); d >= depth {
			kind, depth = m.Kind, d
		}
	}
	return kind
}

func within(p, dir string) bool {
	return dir == "/" || strings.HasPrefix(p, dir+"/")
}

func applyMount(root int, m spec.Mount, src source, images extraImages, create mount.Create) error {
	if m.Kind == spec.KindSymlink {
		return symlinkInRoot(root, m)
	}
	dst, err := mount.OpenInRoot(root, m.Destination, create)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	defer unix.Close(dst)
	switch m.Kind {
	case spec.KindBind:
		// bindMount's errors name the user's source and destination, not /proc/self/fd paths.
		if err = bindMount(root, m, src, dst); err != nil {
			return err
		}
	case spec.KindImage:
		if err = bindImage(m, images, dst); err != nil {
			return fmt.Errorf("bind image %s at %s: %w", m.Source, m.Destination, err)
		}
	case spec.KindProc, spec.KindSysfs:
		err = mount.Mount(string(m.Kind), mount.FDPath(dst), string(m.Kind), mountFlags(m), m.Data)
	case spec.KindTmpfs:
		err = mount.Mount("tmpfs", mount.FDPath(dst), "tmpfs", mountFlags(m), m.Data)
	case spec.KindDevpts:
		err = devpts(m, dst)
	default:
		err = fmt.Errorf("unknown mount kind %q", m.Kind)
	}
	if err != nil {
		return fmt.Errorf("mount %s at %s: %w", m.Source, m.Destination, err)
	}
	if !m.ReadOnly && (privileged == nil || m.Kind != spec.KindBind) {
		return nil
	}
	top, err := mount.OpenInRoot(root, m.Destination, mount.CreateNothing)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	defer unix.Close(top)
	if privileged != nil && m.Kind == spec.KindBind {
		if err := privileged.SecureBind(top, src.fd); err != nil {
			return fmt.Errorf("bind %s onto %s: %w", m.Source, m.Destination, err)
		}
	}
	if !m.ReadOnly {
		return nil
	}
	if err := mount.RemountReadOnly(top); err != nil {
		return fmt.Errorf("make %s read-only: %w", m.Destination, err)
	}
	return nil
}

func bindMount(root int, m spec.Mount, src source, dst int) error {
	fd := src.fd
	if m.SourceInside {
		var err error
		if fd, err = mount.OpenInRoot(root, m.Source, mount.CreateNothing); err != nil {
			return fmt.Errorf("bind %s onto %s: %w", m.Source, m.Destination, err)
		}
		defer unix.Close(fd)
	}
	if err := sameKind(fd, dst, m); err != nil {
		return err
	}
	err := mount.Bind(fd, dst, m.Recursive)
	var me *mount.Error
	if errors.As(err, &me) {
		return fmt.Errorf("bind %s onto %s: %w", m.Source, m.Destination, me.Err)
	}
	return err
}

// sameKind refuses a directory bound onto a file and a file onto a directory, which the kernel
// refuses with a bare ENOTDIR or EISDIR.
func sameKind(src, dst int, m spec.Mount) error {
	var ss, ds unix.Stat_t
	if err := unix.Fstat(src, &ss); err != nil {
		return fmt.Errorf("bind source %s: %w", m.Source, err)
	}
	if err := unix.Fstat(dst, &ds); err != nil {
		return fmt.Errorf("bind destination %s: %w", m.Destination, err)
	}
	srcDir, dstDir := ss.Mode&unix.S_IFMT == unix.S_IFDIR, ds.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case srcDir && !dstDir:
		return fmt.Errorf("bind %s onto %s: %s is a directory but %s in the container is not: bind it to a directory or a new path", m.Source, m.Destination, m.Source, m.Destination)
	case !srcDir && dstDir:
		return fmt.Errorf("bind %s onto %s: %s is not a directory but %s in the container is: bind it to a file or a new path", m.Source, m.Destination, m.Source, m.Destination)
	}
	return nil
}

// devpts mounts a new devpts instance; where the kernel refuses one, the host's /dev/pts is
// bound instead (the terminal then still works, with the host's pty numbering).
func devpts(m spec.Mount, dst int) error {
	err := mount.Mount("devpts", mount.FDPath(dst), "devpts", mountFlags(m), m.Data)
	if err == nil {
		return nil
	}
	host, herr := unix.Open("/dev/pts", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if herr != nil {
		return err
	}
	defer unix.Close(host)
	if berr := mount.Bind(host, dst, false); berr != nil {
		return fmt.Errorf("%w; binding the host's /dev/pts: %w", err, berr)
	}
	return nil
}

// symlinkInRoot makes the link m.Destination -> m.Source; its directory must exist inside root.
func symlinkInRoot(root int, m spec.Mount) error {
	dir, err := mount.OpenInRoot(root, path.Dir(m.Destination), mount.CreateNothing)
	if err != nil {
		return fmt.Errorf("symlink %s: %w", m.Destination, err)
	}
	defer unix.Close(dir)
	if err := unix.Symlinkat(m.Source, unix.AT_FDCWD, mount.FDPath(dir)+"/"+path.Base(m.Destination)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("symlink %s: %w", m.Destination, err)
	}
	return nil
}

// isDirMount reports whether the mount needs a directory as its mount point.
func isDirMount(m spec.Mount, src source) bool {
	return m.Kind != spec.KindBind || src.dir || m.SourceInside
}
