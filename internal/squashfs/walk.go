package squashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// inodeKey identifies a file on disk, to find hardlinks.
type inodeKey struct{ dev, ino uint64 }

// Adder receives entries: a Writer, or something that passes them on to one.
type Adder interface {
	Add(e Entry) error
}

// treeWalker adds an on-disk directory to a Writer.
type treeWalker struct {
	ctx   context.Context
	w     Adder
	root  string
	links map[inodeKey]string
	buf   []byte
	// sizes counts regular files (hardlinks once) per size, 2 meaning "2 or more"; it may be
	// read once counted is closed.
	sizes   map[int64]int
	counted chan struct{}
}

// WriteTree adds the directory dir and everything below it, as on disk: ownership, modes, times,
// xattrs, hardlinks (by device and inode), devices, FIFOs and sockets, in sorted order so that the
// image does not depend on the directory's on-disk order. Symlinks are stored, never followed.
// Xattrs outside the user., trusted. and security. namespaces (such as system.posix_acl_access)
// cannot be stored in squashfs and are skipped, as mksquashfs does.
// The walk stops with ctx's error when ctx is cancelled.
func WriteTree(ctx context.Context, w Adder, dir string) error {
	return writeTree(ctx, w, dir, false)
}

// writeTree is WriteTree; countFirst makes the walk wait for the size count (for tests).
func writeTree(ctx context.Context, w Adder, dir string, countFirst bool) error {
	t := &treeWalker{ctx: ctx, w: w, root: dir, links: map[inodeKey]string{}}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("squashfs: %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("squashfs: %s is not a directory", dir)
	}
	// The count runs beside the walk, so compression starts at once; files added before it ends
	// are hashed, which gives the same image.
	t.counted = make(chan struct{})
	go func() {
		defer close(t.counted)
		t.sizes = countSizes(ctx, dir)
	}()
	defer func() { <-t.counted }()
	if countFirst {
		<-t.counted
	}
	return t.walk(".", &st)
}

// countSizes counts the regular files of the tree by size, so that files of a size nothing else
// has skip the duplicate hash: on the Debian tree they hold 229 of 256 MB, and SHA-256 took 7% of
// the writer's CPU (issue #2). The count costs a second lstat per entry (40 ms there). It is only
// a hint: what it cannot read is left out, and the walk reports the error.
func countSizes(ctx context.Context, dir string) map[int64]int {
	sizes := map[int64]int{}
	inodes := map[inodeKey]bool{}
	var count func(dir string)
	count = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil || ctx.Err() != nil {
			return
		}
		for _, e := range ents {
			full := filepath.Join(dir, e.Name())
			var st unix.Stat_t
			switch {
			case e.IsDir():
				count(full)
			case !e.Type().IsRegular() || unix.Lstat(full, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG:
			case st.Nlink > 1 && inodes[inodeKey{dev: uint64(st.Dev), ino: st.Ino}]:
			default:
				if st.Nlink > 1 {
					inodes[inodeKey{dev: uint64(st.Dev), ino: st.Ino}] = true
				}
				sizes[st.Size] = min(sizes[st.Size]+1, 2)
			}
		}
	}
	count(dir)
	return sizes
}

// walk adds the directory rel (already lstat'ed) and then its children, depth first.
func (t *treeWalker) walk(rel string, st *unix.Stat_t) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if err := t.add(rel, st); err != nil {
		return err
	}
	full := filepath.Join(t.root, rel)
	ents, err := os.ReadDir(full)
	if err != nil {
		return fmt.Errorf("squashfs: read directory %s: %w", full, err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names) // byte order, as the directory table needs
	for _, name := range names {
		child := path.Join(rel, name)
		var cst unix.Stat_t
		if err = unix.Lstat(filepath.Join(t.root, child), &cst); err != nil {
			return fmt.Errorf("squashfs: %s: %w", filepath.Join(t.root, child), err)
		}
		if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = t.walk(child, &cst)
		} else {
			err = t.add(child, &cst)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// add turns one lstat'ed path into an Entry.
func (t *treeWalker) add(rel string, st *unix.Stat_t) error {
	full := filepath.Join(t.root, rel)
	e := Entry{Path: rel, Mode: uint32(st.Mode) & 0o7777, UID: st.Uid, GID: st.Gid, ModTime: st.Mtim.Sec}
	fmtType := st.Mode & unix.S_IFMT
	if fmtType != unix.S_IFDIR && st.Nlink > 1 {
		key := inodeKey{dev: uint64(st.Dev), ino: st.Ino}
		if first, ok := t.links[key]; ok {
			return t.w.Add(Entry{Path: rel, Type: TypeHardlink, Linkname: first})
		}
		t.links[key] = rel
	}
	xattrs, err := t.xattrs(full)
	if err != nil {
		return err
	}
	e.Xattrs = xattrs
	switch fmtType {
	case unix.S_IFDIR:
		e.Type = TypeDir
	case unix.S_IFREG:
		return t.addFile(full, e, st)
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		if e.Linkname, err = os.Readlink(full); err != nil {
			return fmt.Errorf("squashfs: %w", err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = TypeCharDevice
		if fmtType == unix.S_IFBLK {
			e.Type = TypeBlockDevice
		}
		e.DevMajor, e.DevMinor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	case unix.S_IFIFO:
		e.Type = TypeFIFO
	case unix.S_IFSOCK:
		e.Type = TypeSocket
	default:
		return fmt.Errorf("squashfs: %s: unknown file type %#o", full, fmtType)
	}
	return t.w.Add(e)
}

// addFile stores a regular file. O_NOFOLLOW and O_NONBLOCK keep a path swapped for a symlink or
// a FIFO after the lstat from being followed or from blocking; the fstat catches any swap.
func (t *treeWalker) addFile(full string, e Entry, st *unix.Stat_t) error {
	// A raw descriptor, not an os.File: opened non-blocking, an os.File would try to register
	// it with the runtime's poller, one failing epoll_ctl per file of the tree.
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("squashfs: %s: %w", full, err)
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return fmt.Errorf("squashfs: %s: %w", full, err)
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("squashfs: %s changed while being read; pack a tree that nothing modifies", full)
	}
	e.Type, e.Size, e.Body = TypeRegular, st.Size, fdReader{fd: fd, name: full}
	select {
	case <-t.counted:
		e.UniqueSize = t.sizes[st.Size] == 1
	default:
	}
	return t.w.Add(e)
}

// xattrs reads the storable extended attributes of a path without following symlinks.
func (t *treeWalker) xattrs(full string) (map[string]string, error) {
	names, err := t.listXattrs(full)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range names {
		if _, _, err := splitXattrName(name); err != nil {
			continue // not storable in squashfs; see WriteTree
		}
		v, err := t.getXattr(full, name)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

func (t *treeWalker) listXattrs(full string) ([]string, error) {
	for size := 1024; ; size *= 4 {
		if len(t.buf) < size {
			t.buf = make([]byte, size)
		}
		n, err := unix.Llistxattr(full, t.buf[:size])
		switch {
		case errors.Is(err, unix.ERANGE) && size < 1<<22:
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("squashfs: list xattrs of %s: %w", full, err)
		}
		var names []string
		for _, name := range bytes.Split(t.buf[:n], []byte{0}) {
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		slices.Sort(names)
		return names, nil
	}
}

func (t *treeWalker) getXattr(full, name string) (string, error) {
	for size := 1024; ; size *= 4 {
		if len(t.buf) < size {
			t.buf = make([]byte, size)
		}
		n, err := unix.Lgetxattr(full, name, t.buf[:size])
		switch {
		case errors.Is(err, unix.ERANGE) && size < 1<<22:
			continue
		case err != nil:
			return "", fmt.Errorf("squashfs: read xattr %s of %s: %w", name, full, err)
		}
		return string(t.buf[:n]), nil
	}
}

// fdReader reads a regular file's descriptor.
type fdReader struct {
	fd   int
	name string
}

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("read %s: %w", r.name, err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
