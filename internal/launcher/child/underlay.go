package child

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// maxUnderlayEntries bounds the binds one underlay makes (one per entry of the directory it
// shadows): each is a mount, and the kernel limits a mount namespace to fs.mount-max of them.
const maxUnderlayEntries = 4096

// underlays make mount points that a bind's host directory lacks (`-B a:/x -B b:/x/y` where a has
// no y; a bind under a custom --home) without writing on the host, as Apptainer's underlay does for
// an image: the directory that lacks the next component gets a private tmpfs in its place, in
// which each of its entries is bound back from the host (reads and writes reach the host as
// before) and the missing components are created. The tmpfs itself is made read-only once every
// mount is in place, so that a new name created at that one level fails loudly (EROFS) instead
// of vanishing with the container.
type underlays struct {
	devs map[uint64]bool // st_dev of every underlay tmpfs
	tops []int           // their roots, open, for the final read-only remount
}

func newUnderlays() *underlays { return &underlays{devs: map[uint64]bool{}} }

func (u *underlays) close() {
	for _, fd := range u.tops {
		unix.Close(fd)
	}
}

// mountPoint creates m's missing mount point inside root, shadowing the deepest existing
// directory on its way when that directory is not already an underlay.
func (u *underlays) mountPoint(root int, m spec.Mount, dir bool, log *stepLog) error {
	if fd, err := mount.OpenInRoot(root, m.Destination, mount.CreateNothing); err == nil {
		// The common case: the mount point is there.
		unix.Close(fd)
		return nil
	}
	parent, missing, err := deepestDir(root, m.Destination)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	fd, err := mount.OpenInRoot(root, parent, mount.CreateNothing)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if !u.devs[st.Dev] {
		err := withSetupCaps(func() error { return u.shadow(root, parent, m) })
		if err = log.done(Step{Step: "underlay", Source: "tmpfs", Target: parent, Flags: "nosuid,nodev"}, err); err != nil {
			return err
		}
	}
	create := mount.CreateFile
	if dir {
		create = mount.CreateDir
	}
	return withSetupCaps(func() error {
		fd, err := mount.OpenInRoot(root, m.Destination, create)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
}

// deepestDir resolves p inside root component by component and returns the path of the deepest
// one that exists and the components missing after it.
func deepestDir(root int, p string) (string, []string, error) {
	comps := strings.Split(strings.Trim(p, "/"), "/")
	found := "/"
	for i := range comps {
		sub := "/" + strings.Join(comps[:i+1], "/")
		fd, err := mount.OpenInRoot(root, sub, mount.CreateNothing)
		if errors.Is(err, unix.ENOENT) {
			return found, comps[i:], nil
		}
		if err != nil {
			return "", nil, err
		}
		unix.Close(fd)
		found = sub
	}
	return found, nil, nil
}

// shadow mounts the underlay tmpfs on the directory dir (a path inside root) and binds each of
// its entries back.
func (u *underlays) shadow(root int, dir string, m spec.Mount) error {
	old, err := mount.OpenInRoot(root, dir, mount.CreateNothing)
	if err != nil {
		return err
	}
	defer unix.Close(old)
	names, err := readNames(old)
	if err != nil {
		return fmt.Errorf("read %s to place %s in it: %w", dir, m.Destination, err)
	}
	if len(names) > maxUnderlayEntries {
		return fmt.Errorf("%s has no %s and hpcctl creates nothing on the host; with %d entries it is too large to shadow: create %s on the host (in the directory bound at %s)", dir, path.Base(m.Destination), len(names), strings.TrimPrefix(m.Destination, dir+"/"), dir)
	}
	var st unix.Stat_t
	if err = unix.Fstat(old, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	data := fmt.Sprintf("mode=%04o", st.Mode&0o7777)
	if err = mount.Mount("tmpfs", mount.FDPath(old), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return err
	}
	top, err := mount.OpenInRoot(root, dir, mount.CreateNothing)
	if err != nil {
		return err
	}
	u.tops = append(u.tops, top)
	// The owner as on the host, where the namespace maps it; a tmpfs belongs to its mounter.
	unix.Fchownat(top, "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH) //nolint:errcheck // cosmetic, see above
	var tst unix.Stat_t
	if err := unix.Fstat(top, &tst); err != nil {
		return err
	}
	u.devs[tst.Dev] = true
	for _, name := range names {
		if err := bindBack(old, top, name); err != nil {
			return fmt.Errorf("%s/%s: %w", dir, name, err)
		}
	}
	return nil
}

// readNames lists the directory open (O_PATH) as dir.
func readNames(dir int) ([]string, error) {
	fd, err := unix.Open(mount.FDPath(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// bindBack recreates the entry name of the shadowed directory old in the underlay top: a
// symbolic link as a link with the same target, anything else as a mount point with the entry
// bound onto it (recursively: what is mounted below stays visible).
func bindBack(old, top int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(old, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	dst := mount.FDPath(top) + "/" + name
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := readlinkAt(old, name)
		if err != nil {
			return err
		}
		return unix.Symlinkat(target, top, name)
	case unix.S_IFDIR:
		if err := unix.Mkdirat(top, name, 0o755); err != nil {
			return err
		}
	default:
		fd, err := unix.Open(dst, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	src, err := unix.Openat(old, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	to, err := unix.Openat(top, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(to)
	return mount.Bind(src, to, true)
}

func readlinkAt(dir int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// seal makes every underlay tmpfs read-only, once all mount points are made.
func (u *underlays) seal(log *stepLog) error {
	for _, fd := range u.tops {
		if err := log.done(Step{Step: "remount", Target: "underlay", Flags: "bind,remount,ro"}, mount.RemountReadOnly(fd)); err != nil {
			return fmt.Errorf("make an underlay read-only: %w", err)
		}
	}
	return nil
}
