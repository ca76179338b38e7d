package squashfs

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ExtractOptions controls Extract.
type ExtractOptions struct {
	// KeepSetuid keeps setuid and setgid bits; without it they are cleared, so that extracting
	// an image as root does not plant set-id programs on the host.
	KeepSetuid bool
	// Xattrs restores extended attributes, best effort: names the file system or the caller's
	// privileges refuse are logged and skipped.
	Xattrs bool
	// Logger receives the skipped attributes and device nodes; nil is quiet.
	Logger *slog.Logger
}

// Extract writes the whole image into dst, an existing empty directory. Ownership is restored
// only when running as root. Every file is created relative to a directory descriptor that
// Extract itself created, by single path components and with O_NOFOLLOW, and hardlink sources
// are opened with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so a hostile image cannot write outside
// dst. On error the contents of dst are removed.
func Extract(r *Reader, dst string, opts ExtractOptions) error {
	ents, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("extract into %s: directory not empty: give an empty directory", dst)
	}
	rootfd, err := unix.Open(dst, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("extract: open %s: %w", dst, err)
	}
	defer unix.Close(rootfd)
	x := &extractor{r: r, opts: opts, rootfd: rootfd, root: os.Geteuid() == 0,
		links: map[uint32]linkSource{}, seen: map[uint64]bool{}}
	if x.opts.Logger == nil {
		x.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := x.dir(rootfd, ".", r.root); err != nil {
		cleanDir(dst)
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	return nil
}

// cleanDir removes what a failed extraction left, making directories writable first.
func cleanDir(dst string) {
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dst, e.Name()))
	}
}

type extractor struct {
	r      *Reader
	opts   ExtractOptions
	rootfd int
	root   bool
	links  map[uint32]linkSource // first path extracted for each inode number
	seen   map[uint64]bool       // directories extracted, against loops
}

type linkSource struct {
	ref uint64
	rel string
}

// dir fills directory fd (already created, at rel) and then applies its metadata.
func (x *extractor) dir(fd int, rel string, in *Inode) error {
	if x.seen[in.ref] {
		return fmt.Errorf("%s: directory reached twice (a loop)", rel)
	}
	x.seen[in.ref] = true
	ents, err := x.r.readDir(in)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	for _, d := range ents {
		child, err := x.r.direntInode(d)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if err := x.entry(fd, path.Join(rel, d.name), d.name, child); err != nil {
			return err
		}
	}
	if err := x.fdMeta(fd, rel, in); err != nil {
		return err
	}
	return nil
}

// entry creates one name in directory fd.
func (x *extractor) entry(dirfd int, rel, name string, in *Inode) error {
	if src, ok := x.links[in.InodeNumber]; ok && src.ref == in.ref && in.Type != TypeDir {
		return x.hardlink(dirfd, rel, name, src.rel)
	}
	switch in.Type {
	case TypeDir:
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
			return fmt.Errorf("%s: mkdir: %w", rel, err)
		}
		fd, err := unix.Openat(dirfd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: open: %w", rel, err)
		}
		defer unix.Close(fd)
		return x.dir(fd, rel, in)
	case TypeRegular:
		if err := x.regular(dirfd, rel, name, in); err != nil {
			return err
		}
	case TypeSymlink:
		if err := unix.Symlinkat(in.Linkname, dirfd, name); err != nil {
			return fmt.Errorf("%s: symlink: %w", rel, err)
		}
		if err := x.atMeta(dirfd, rel, name, in); err != nil {
			return err
		}
	default:
		created, err := x.mknod(dirfd, rel, name, in)
		if err != nil || !created {
			return err
		}
		if err := x.atMeta(dirfd, rel, name, in); err != nil {
			return err
		}
	}
	// Later names for the same inode become hardlinks to this one.
	x.links[in.InodeNumber] = linkSource{ref: in.ref, rel: rel}
	return nil
}

func (x *extractor) mknod(dirfd int, rel, name string, in *Inode) (bool, error) {
	dev := int(unix.Mkdev(in.DevMajor, in.DevMinor))
	err := unix.Mknodat(dirfd, name, in.Type.ModeBits()|0o600, dev)
	if errors.Is(err, unix.EPERM) && !x.root {
		// Every unprivileged extraction of an ordinary image meets its /dev entries, and a
		// container's /dev comes from the host anyway: not worth a warning on every --unsquash.
		x.opts.Logger.Debug("skipping device node: creating it needs root", "path", rel)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: mknod: %w", rel, err)
	}
	return true, nil
}

// hardlink links name to the earlier path src, whose parent is opened without following any
// symlink and without leaving the extraction root.
func (x *extractor) hardlink(dirfd int, rel, name, src string) error {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	pfd, err := unix.Openat2(x.rootfd, path.Dir(src), how)
	if err != nil {
		return fmt.Errorf("%s: open hardlink source directory %s: %w", rel, path.Dir(src), err)
	}
	defer unix.Close(pfd)
	if err := unix.Linkat(pfd, path.Base(src), dirfd, name, 0); err != nil {
		return fmt.Errorf("%s: link to %s: %w", rel, src, err)
	}
	return nil
}

// regular writes a file's blocks, leaving sparse blocks as holes.
func (x *extractor) regular(dirfd int, rel, name string, in *Inode) error {
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("%s: create: %w", rel, err)
	}
	defer unix.Close(fd)
	bs := int64(x.r.sb.BlockSize)
	nblocks := (in.Size + bs - 1) / bs
	for i := range nblocks {
		if i < int64(len(in.blocks)) && in.blocks[i]&^dataUncompressed == 0 {
			continue
		}
		b, err := x.r.fileBlock(in, i)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if err := pwriteAll(fd, b, i*bs); err != nil {
			return fmt.Errorf("%s: write: %w", rel, err)
		}
	}
	if err := unix.Ftruncate(fd, in.Size); err != nil {
		return fmt.Errorf("%s: truncate: %w", rel, err)
	}
	return x.fdMeta(fd, rel, in)
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// fdMeta applies ownership, mode, xattrs and times to an open file or directory. chown comes
// before chmod because chown clears set-id bits.
func (x *extractor) fdMeta(fd int, rel string, in *Inode) error {
	if x.root {
		if err := unix.Fchown(fd, int(in.UID), int(in.GID)); err != nil {
			return fmt.Errorf("%s: chown: %w", rel, err)
		}
	}
	if err := unix.Fchmod(fd, x.mode(in)); err != nil {
		return fmt.Errorf("%s: chmod: %w", rel, err)
	}
	if err := x.xattrs(rel, in, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: in.ModTime}, {Sec: in.ModTime}}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s: set times: %w", rel, err)
	}
	return nil
}

// atMeta is fdMeta for symlinks and nodes, which cannot be opened for writing.
func (x *extractor) atMeta(dirfd int, rel, name string, in *Inode) error {
	if x.root {
		if err := unix.Fchownat(dirfd, name, int(in.UID), int(in.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: chown: %w", rel, err)
		}
	}
	if in.Type != TypeSymlink {
		if err := unix.Fchmodat(dirfd, name, x.mode(in), 0); err != nil {
			return fmt.Errorf("%s: chmod: %w", rel, err)
		}
	}
	// /proc/self/fd/N names our own directory; the final component is not followed.
	p := fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
	if err := x.xattrs(rel, in, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: in.ModTime}, {Sec: in.ModTime}}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: set times: %w", rel, err)
	}
	return nil
}

func (x *extractor) mode(in *Inode) uint32 {
	m := in.Mode & 07777
	if !x.opts.KeepSetuid {
		m &^= 06000
	}
	return m
}

// xattrs sets the inode's attributes with set, skipping (and logging) refusals.
func (x *extractor) xattrs(rel string, in *Inode, set func(string, []byte) error) error {
	if !x.opts.Xattrs || in.Xattr == noXattr {
		return nil
	}
	attrs, err := x.r.xattrs(in.Xattr)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	for k, v := range attrs {
		if err := set(k, []byte(v)); err != nil {
			x.opts.Logger.Warn("skipping extended attribute", "path", rel, "name", k, "err", err)
		}
	}
	return nil
}
