package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
)

// Open opens name, following symlinks. A regular file is also an io.ReaderAt and io.Seeker;
// a directory is an fs.ReadDirFile. A file is for one goroutine; the Reader is shared.
func (r *Reader) Open(name string) (fs.File, error) {
	in, err := r.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	base := openFile{r: r, in: in, name: name}
	switch in.Type {
	case TypeRegular:
		return &regularFile{openFile: base}, nil
	case TypeDir:
		return &dirFile{openFile: base}, nil
	}
	return &base, nil
}

// openFile is an open inode that has no content to read (devices, FIFOs, sockets).
type openFile struct {
	r      *Reader
	in     *Inode
	name   string
	closed bool
}

func (f *openFile) Stat() (fs.FileInfo, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "stat", Path: f.name, Err: fs.ErrClosed}
	}
	return &fileInfo{name: path.Base(f.name), in: f.in}, nil
}

func (f *openFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.name, Err: fmt.Errorf("is a %s, not a regular file", f.in.Type)}
}

func (f *openFile) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// regularFile reads a regular file's content.
type regularFile struct {
	openFile
	off int64
}

var (
	_ io.ReaderAt = (*regularFile)(nil)
	_ io.Seeker   = (*regularFile)(nil)
)

func (f *regularFile) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if f.off >= f.in.Size {
		return 0, io.EOF
	}
	n, err := f.r.readFileAt(f.in, p, f.off)
	f.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, f.wrap("read", err)
}

// ReadAt is safe to call from several goroutines at once.
func (f *regularFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	n, err := f.r.readFileAt(f.in, p, off)
	return n, f.wrap("read", err)
}

func (f *regularFile) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrClosed}
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.in.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// wrap names the file in an error, leaving io.EOF bare as readers must.
func (f *regularFile) wrap(op string, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return &fs.PathError{Op: op, Path: f.name, Err: err}
}

// dirFile lists a directory.
type dirFile struct {
	openFile
	ents   []dirent
	loaded bool
	pos    int
}

func (f *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
}

// ReadDir follows fs.ReadDirFile: n > 0 returns at most n entries and io.EOF at the end;
// n <= 0 returns the rest.
func (f *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: fs.ErrClosed}
	}
	if !f.loaded {
		ents, err := f.r.readDir(f.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: err}
		}
		f.ents, f.loaded = ents, true
	}
	rest := f.ents[f.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	f.pos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, d := range rest {
		out[i] = &dirEntry{r: f.r, d: d}
	}
	return out, nil
}

// Walk calls fn for every inode, depth first in directory order, the root (".") first. fn may
// return fs.SkipDir for a directory to skip its contents, or fs.SkipAll to stop. A directory
// reached twice (a loop or a hardlinked directory, which squashfs never writes) is an error.
func (r *Reader) Walk(fn func(p string, in *Inode) error) error {
	err := fn(".", r.root)
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	if err != nil {
		return err
	}
	err = r.walkDir(".", r.root, map[uint64]bool{}, fn)
	if errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (r *Reader) walkDir(p string, dir *Inode, seen map[uint64]bool, fn func(string, *Inode) error) error {
	if seen[dir.ref] {
		return fmt.Errorf("directory table: %s: directory inode 0x%x reached twice (a loop)", p, dir.ref)
	}
	seen[dir.ref] = true
	ents, err := r.readDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for _, d := range ents {
		cp := path.Join(p, d.name)
		in, err := r.direntInode(d)
		if err != nil {
			return fmt.Errorf("%s: %w", cp, err)
		}
		err = fn(cp, in)
		if errors.Is(err, fs.SkipDir) {
			if in.Type == TypeDir {
				continue
			}
			return nil // as filepath.WalkDir: skip the rest of this directory
		}
		if err != nil {
			return err
		}
		if in.Type == TypeDir {
			if err := r.walkDir(cp, in, seen, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
