package starter

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Owners are the UIDs whose files the starter trusts: root, and kernel_mount_owners.
type Owners map[uint32]bool

// OwnersOf resolves kernel_mount_owners: UIDs as given, names through /etc/passwd only (a file
// root owns; NSS would run code the user may influence).
func OwnersOf(names []string) Owners {
	o := Owners{0: true}
	var byName map[string]uint32
	for _, n := range names {
		if uid, err := strconv.ParseUint(n, 10, 32); err == nil {
			o[uint32(uid)] = true
			continue
		}
		if byName == nil {
			byName = passwdNames()
		}
		if uid, ok := byName[n]; ok {
			o[uid] = true
		}
	}
	return o
}

func passwdNames() map[string]uint32 {
	m := map[string]uint32{}
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Split(sc.Text(), ":")
		if len(fl) > 2 {
			if uid, err := strconv.ParseUint(fl[2], 10, 32); err == nil {
				m[fl[0]] = uint32(uid)
			}
		}
	}
	return m
}

// safeDir reports whether user cannot change what the directory st holds: a trusted owner who is
// not user, and writable by no one else, or sticky (user can then rename or remove only
// entries of their own).
func (o Owners) safeDir(st *unix.Stat_t, user int) bool {
	return o[st.Uid] && int(st.Uid) != user && (st.Mode&0o022 == 0 || st.Mode&unix.S_ISVTX != 0)
}

// SafePath reports why user could change the file at p or any directory above it, nil when
// they cannot: p is owned by a trusted owner other than user and writable by no one else, and
// each directory above is safeDir. p must be a real path (no symbolic links).
func (o Owners) SafePath(p string, user int) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	if !o[st.Uid] || int(st.Uid) == user || st.Mode&0o022 != 0 || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s is owned by UID %d with mode %#o", p, st.Uid, st.Mode&0o7777)
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if err := unix.Lstat(d, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || !o.safeDir(&st, user) {
			return fmt.Errorf("directory %s is owned by UID %d with mode %#o", d, st.Uid, st.Mode&0o7777)
		}
		if d == "/" {
			return nil
		}
	}
}

// TrustedImage reports why the image open as f must not be mounted by the kernel for user, nil
// when it may: the kernel's squashfs driver would parse whatever the file holds, so the file must
// be one the user cannot change, now or while it runs. It checks the open file itself, and the
// path it is at now (the kernel's name for the descriptor) for the directories.
func (o Owners) TrustedImage(f *os.File, user int) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("it is not a regular file")
	}
	if err := rootFUSE(f); err != nil {
		return err
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || !filepath.IsAbs(real) || strings.HasSuffix(real, " (deleted)") {
		return fmt.Errorf("it has no path (deleted?)")
	}
	var at unix.Stat_t
	if err := unix.Lstat(real, &at); err != nil || at.Dev != st.Dev || at.Ino != st.Ino {
		return fmt.Errorf("it moved while it was opened")
	}
	return o.SafePath(real, user)
}

// rootFUSE refuses an image on a FUSE file system that a user mounted. Its server (any user may
// run one, through fusermount3) reports whatever owners and modes it likes and may serve other
// bytes at each read: an image there only seems root's. A FUSE mount made by root (CVMFS, say)
// is root's like any other file system: the kernel's user_id option names the mounter.
func rootFUSE(f *os.File) error {
	var sf unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sf); err != nil {
		return err
	}
	if sf.Type != unix.FUSE_SUPER_MAGIC {
		return nil
	}
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return fmt.Errorf("it is on a FUSE file system whose mounter is unknown")
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	id := strconv.FormatUint(stx.Mnt_id, 10) + " "
	for _, l := range strings.Split(string(info), "\n") {
		// "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - TYPE SOURCE SUPEROPTS"
		_, super, ok := strings.Cut(l, " - ")
		if !strings.HasPrefix(l, id) || !ok {
			continue
		}
		if fl := strings.Fields(super); len(fl) == 3 && slices.Contains(strings.Split(fl[2], ","), "user_id=0") {
			return nil
		}
	}
	return fmt.Errorf("it is on a FUSE file system that a user mounted, whose server decides its owners and contents")
}
