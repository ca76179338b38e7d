// Package mount wraps the mount-related system calls hpcctl uses: mount(2) with errors that print
// flags and paths, loop devices, FUSE mounts served by squashfuse_ll, and secure joins.
package mount

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Error is a failed mount(2): it prints every argument, because "invalid argument" alone says nothing.
type Error struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Err                    error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("mount %s on %s", e.Source, e.Target)
	if e.FSType != "" {
		s += " type " + e.FSType
	}
	s += " (" + FlagString(e.Flags)
	if e.Data != "" {
		s += "," + e.Data
	}
	return s + "): " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Mount calls mount(2) and returns an *Error on failure.
func Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &Error{Source: source, Target: target, FSType: fstype, Flags: flags, Data: data, Err: err}
	}
	return nil
}

var flagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"}, {unix.MS_REMOUNT, "remount"}, {unix.MS_BIND, "bind"},
	{unix.MS_REC, "rec"}, {unix.MS_PRIVATE, "private"}, {unix.MS_SLAVE, "slave"},
	{unix.MS_SHARED, "shared"}, {unix.MS_NOATIME, "noatime"}, {unix.MS_NODIRATIME, "nodiratime"},
	{unix.MS_RELATIME, "relatime"}, {unix.MS_MOVE, "move"},
}

// FlagString names mount flags the way mount(8) prints them.
func FlagString(flags uintptr) string {
	var names []string
	for _, f := range flagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	if len(names) == 0 {
		return "rw"
	}
	return strings.Join(names, ",")
}

// LockedFlags returns the flags of the mount holding fd that a remount must repeat: inside a user
// namespace the kernel refuses (EPERM) a remount that would clear nosuid, nodev, noexec or the atime
// flags of a mount inherited from the host.
func LockedFlags(fd int) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return 0, fmt.Errorf("statfs: %w", err)
	}
	var flags uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
		{unix.ST_RDONLY, unix.MS_RDONLY},
	} {
		if st.Flags&m.st != 0 {
			flags |= m.ms
		}
	}
	return flags, nil
}

// FDPath names an open file by descriptor, so that mount(2) acts on exactly the file that was
// opened and checked rather than on whatever a path resolves to later.
func FDPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// Bind binds the file or directory open as src onto the one open as dst.
func Bind(src, dst int, recursive bool) error {
	flags := uintptr(unix.MS_BIND)
	if recursive {
		flags |= unix.MS_REC
	}
	return Mount(FDPath(src), FDPath(dst), "", flags, "")
}

// RemountReadOnly makes the mount that fd lies on read-only. The fd must have been opened after
// the mount was made: a descriptor opened before names the covered directory, and a magic link
// does not cross into the mount on top of it.
func RemountReadOnly(fd int) error {
	locked, err := LockedFlags(fd)
	if err != nil {
		return err
	}
	return Mount("", FDPath(fd), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|locked, "")
}

// Detach lazily unmounts target (MNT_DETACH): a build stage takes its overlay and bind mounts
// apart before it removes the directories under them.
func Detach(target string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}
