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
