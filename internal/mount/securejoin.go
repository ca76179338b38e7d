package mount

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Create says what OpenInRoot makes when the path is missing.
type Create int

// What to create for a missing last component; missing parents are always made as directories.
const (
	CreateNothing Create = iota
	CreateDir
	CreateFile
)

// OpenInRoot opens p (absolute, inside the container) relative to the directory open as root, as
// an O_PATH descriptor. Every component is resolved with RESOLVE_IN_ROOT, so ".." and symlinks,
// absolute or not, stay inside root: an image cannot point a bind destination at the host.
// Missing components are created (mode 0755 directories, 0644 empty file) when create asks.
func OpenInRoot(root int, p string, create Create) (int, error) {
	fd, err := openInRoot(root, p)
	if err == nil || !errors.Is(err, unix.ENOENT) || create == CreateNothing {
		return fd, wrapPath(p, err)
	}
	// Walk down from the root, creating what is missing; a component made by someone else in the
	// meantime (EEXIST) is fine, it is opened by the same confined lookup.
	parent, err := unix.Openat2(root, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_DIRECTORY})
	if err != nil {
		return -1, wrapPath("/", err)
	}
	comps := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for i, c := range comps {
		last := i == len(comps)-1
		sub := "/" + strings.Join(comps[:i+1], "/")
		fd, err := openInRoot(root, sub)
		if errors.Is(err, unix.ENOENT) {
			if err = makeAt(parent, c, last && create == CreateFile); err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = openInRoot(root, sub)
			}
		}
		unix.Close(parent)
		if err != nil {
			return -1, wrapPath(sub, err)
		}
		parent = fd
	}
	return parent, nil
}

func openInRoot(root int, p string) (int, error) {
	return unix.Openat2(root, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// makeAt creates name in the directory open as parent. O_PATH descriptors cannot be written
// through, so the directory is reached by its /proc/self/fd name, which names exactly that inode.
func makeAt(parent int, name string, file bool) error {
	dir := FDPath(parent)
	if !file {
		return unix.Mkdirat(unix.AT_FDCWD, dir+"/"+name, 0o755)
	}
	fd, err := unix.Open(dir+"/"+name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func wrapPath(p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("resolve %s inside the container: %w", p, err)
}

// OpenDirNoFollow opens the directory p as an O_PATH descriptor; p's last component must not be a
// symbolic link (its parents may be: /home is one on many clusters). A link there would make the
// checks that follow look at its target, which whoever owns the link chooses.
func OpenDirNoFollow(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, ErrSymlink
		}
	}
	return fd, err
}

// ErrSymlink is a path hpcctl will not follow: a symbolic link where it needs a directory.
var ErrSymlink = errors.New("is a symbolic link")

// OpenBeneath opens the directory name inside the directory open as dir, without following any
// symbolic link and without leaving dir (RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH), creating it (mode
// 0755) when it is missing and create is true.
func OpenBeneath(dir int, name string, create bool) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(dir, name, how)
	if errors.Is(err, unix.ENOENT) && create {
		if err = unix.Mkdirat(dir, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			fd, err = unix.Openat2(dir, name, how)
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, ErrSymlink
		}
	}
	return fd, err
}

// OwnerError is a directory that is not the user's alone: owned by someone else, or writable by
// others.
type OwnerError struct {
	UID, Mode uint32
	Want      int
}

func (e *OwnerError) Error() string {
	if int(e.UID) != e.Want {
		return fmt.Sprintf("belongs to UID %d, not to you", e.UID)
	}
	return fmt.Sprintf("is writable by other users (mode %04o)", e.Mode&0o7777)
}

// CheckOwned requires the directory open as fd to be owned by uid and writable by no other user:
// writable by the group only when it is gid (a user private group). Another user who could write
// there could swap what hpcctl then writes into, with the launching user's rights.
func CheckOwned(fd, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != uid || st.Mode&0o002 != 0 || (st.Mode&0o020 != 0 && int(st.Gid) != gid) {
		return &OwnerError{UID: st.Uid, Mode: st.Mode, Want: uid}
	}
	return nil
}

// OpenWritableOverlay opens a writable overlay directory's upper and work directories as O_PATH
// descriptors, creating them when create is true, for mounting through their /proc/self/fd names.
// dir, upper and work must be directories (not symbolic links) owned by uid (any owner for root,
// as Apptainer's root may use a user's overlay) and writable by no other user. Root's launch once
// followed another user's links there: with dir/work pointing at a directory of root's, overlayfs
// emptied its work/work, and with dir/upper pointing elsewhere, root's changes went there; the
// descriptors opened without following links are what overlayfs gets, so an owner who swaps
// them afterwards changes nothing.
func OpenWritableOverlay(dir string, uid, gid int, create bool) (upper, work int, err error) {
	top, err := OpenDirNoFollow(dir)
	if err != nil {
		return -1, -1, overlayError(dir, err)
	}
	defer unix.Close(top)
	if err := checkOverlayOwner(top, uid, gid); err != nil {
		return -1, -1, overlayError(dir, err)
	}
	fds := []int{}
	for _, sub := range []string{"upper", "work"} {
		fd, err := OpenBeneath(top, sub, create)
		if err == nil {
			if err = checkOverlayOwner(fd, uid, gid); err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return -1, -1, overlayError(path.Join(dir, sub), err)
		}
		fds = append(fds, fd)
	}
	return fds[0], fds[1], nil
}

// checkOverlayOwner is CheckOwned for a writable overlay's directories, where root accepts any
// owner: the directory is then still writable by no one but its owner.
func checkOverlayOwner(fd, uid, gid int) error {
	if uid != 0 {
		return CheckOwned(fd, uid, gid)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return CheckOwned(fd, int(st.Uid), gid)
}

func overlayError(p string, err error) error {
	var oe *OwnerError
	switch {
	case errors.Is(err, ErrSymlink):
		return fmt.Errorf("overlay %s is a symbolic link: a writable overlay must be a real directory of your own (hpcctl follows no link there)", p)
	case errors.As(err, &oe) && int(oe.UID) != oe.Want:
		return fmt.Errorf("overlay %s %v: a writable overlay must be your own directory", p, oe)
	case errors.As(err, &oe):
		return fmt.Errorf("overlay %s %v: a writable overlay must be writable by you alone (chmod go-w %s)", p, oe, p)
	}
	return fmt.Errorf("overlay %s: %w", p, err)
}
