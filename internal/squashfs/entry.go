package squashfs

import (
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Type is the kind of a file system entry.
type Type uint8

// Entry types. Hardlink is an entry that names an earlier (or later) regular file, symlink,
// device, FIFO or socket entry by path and shares its inode.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink
	TypeCharDevice
	TypeBlockDevice
	TypeFIFO
	TypeSocket
)

// ModeBits is the type's S_IF* bits of a stat mode (a hardlink's are its target's: S_IFREG here).
func (t Type) ModeBits() uint32 {
	switch t {
	case TypeDir:
		return unix.S_IFDIR
	case TypeSymlink:
		return unix.S_IFLNK
	case TypeCharDevice:
		return unix.S_IFCHR
	case TypeBlockDevice:
		return unix.S_IFBLK
	case TypeFIFO:
		return unix.S_IFIFO
	case TypeSocket:
		return unix.S_IFSOCK
	}
	return unix.S_IFREG
}

// String names the type for messages.
func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeCharDevice:
		return "character device"
	case TypeBlockDevice:
		return "block device"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is one file of the image, as the layer flattener or a directory walk produces it.
// Everything on disk comes from the entry, never from the process that writes: a plain user
// writes root-owned, setuid files with the entry's times.
type Entry struct {
	// Path is relative to the image root, slash-separated and clean ("usr/bin/env"); "." is the root.
	Path string
	Type Type
	// Mode holds the permission bits with setuid, setgid and sticky (07777); type bits are ignored.
	Mode uint32
	UID  uint32
	GID  uint32
	// ModTime is in seconds since the epoch; squashfs stores 32 bits.
	ModTime int64
	// Xattrs maps full names ("user.x", "trusted.overlay.opaque", "security.capability") to values.
	Xattrs map[string]string
	// Size is the length of a regular file's content.
	Size int64
	// Body yields exactly Size bytes of a regular file. It is read during Add only.
	Body io.Reader
	// UniqueSize says that no other regular file of the image has this Size, so the writer need
	// not hash the content to find duplicates (WriteTree knows the sizes beforehand). A wrong
	// hint only costs a duplicate that is stored twice.
	UniqueSize bool
	// Linkname is a symlink's target, or the Path of the entry a hardlink shares its inode with.
	Linkname string
	// DevMajor and DevMinor are a device treeNode's numbers.
	DevMajor uint32
	DevMinor uint32
}

// CleanPath checks that p names a path inside the image and returns it in Entry.Path form.
// It rejects rather than repairs "..", so a hostile name cannot land somewhere unexpected.
func CleanPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "./")
	p = strings.TrimLeft(p, "/")
	if p == "" || p == "." {
		return ".", nil
	}
	for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q leaves the image root", p)
		}
		if len(part) > maxNameLen {
			return "", fmt.Errorf("path %q: name longer than %d bytes", p, maxNameLen)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	return path.Clean(p), nil
}
