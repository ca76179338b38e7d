package child

import (
	"errors"
	"fmt"

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
func openSources(ms []spec.Mount) (sources, error) {
	ss := make(sources, len(ms))
	for i, m := range ms {
		ss[i].fd = -1
		if m.Kind != spec.KindBind {
			continue
		}
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil && m.Optional && errors.Is(err, unix.ENOENT) {
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
// the root, so that a later mount is placed on top of an earlier one as the Spec orders.
func applyMounts(root int, ms []spec.Mount, ss sources) error {
	for i, m := range ms {
		if m.Kind == spec.KindBind && ss[i].fd < 0 {
			continue
		}
		if err := applyMount(root, m, ss[i]); err != nil {
			if m.Optional {
				continue
			}
			return err
		}
	}
	return nil
}

func applyMount(root int, m spec.Mount, src source) error {
	dst, err := mount.OpenInRoot(root, m.Destination, mount.CreateNothing)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	defer unix.Close(dst)
	switch m.Kind {
	case spec.KindBind:
		err = mount.Bind(src.fd, dst, m.Recursive)
	case spec.KindProc, spec.KindSysfs, spec.KindTmpfs:
		err = mount.Mount(string(m.Kind), mount.FDPath(dst), string(m.Kind), unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, m.Data)
	default:
		err = fmt.Errorf("unknown mount kind %q", m.Kind)
	}
	if err != nil {
		return fmt.Errorf("mount %s at %s: %w", m.Source, m.Destination, err)
	}
	if !m.ReadOnly {
		return nil
	}
	top, err := mount.OpenInRoot(root, m.Destination, mount.CreateNothing)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	defer unix.Close(top)
	if err := mount.RemountReadOnly(top); err != nil {
		return fmt.Errorf("make %s read-only: %w", m.Destination, err)
	}
	return nil
}

// isDirMount reports whether the mount needs a directory as its mount point.
func isDirMount(m spec.Mount, src source) bool {
	return m.Kind != spec.KindBind || src.dir
}
