package build

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pendingFile is an output written beside its destination and given its name only when
// complete, so that an interrupted build never leaves a partial image and never clobbers an
// existing one before the new one is whole. Where the file system supports O_TMPFILE the file has
// no name at all until then, so even SIGKILL leaves nothing behind; elsewhere (NFS, some parallel
// file systems) it is a hidden temporary file, removed on every failure hpcctl lives through.
type pendingFile struct {
	*os.File
	dest    string
	force   bool // replace an existing destination
	unnamed bool
	done    bool
}

// createPending checks the destination and opens the file that will become it.
func createPending(dest string, force bool) (*pendingFile, error) {
	st, err := os.Lstat(dest)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("output %s is a directory: name a .sif file", dest)
	case err == nil && !force:
		return nil, fmt.Errorf("output %s already exists: use --force to replace it", dest)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("output %s: %w", dest, err)
	}
	dir := filepath.Dir(dest)
	if fd, oerr := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o755); oerr == nil {
		return &pendingFile{File: os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), dest: dest, force: force, unnamed: true}, nil
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create output in %s: %w (check the directory exists and is writable)", dir, err)
	}
	return &pendingFile{File: f, dest: dest, force: force}, nil
}

// commit makes the file durable and gives it its final name and mode.
func (p *pendingFile) commit() error {
	if err := p.Chmod(0o755); err != nil {
		return fmt.Errorf("output %s: %w", p.dest, err)
	}
	if err := p.Sync(); err != nil {
		return fmt.Errorf("output %s: sync: %w", p.dest, err)
	}
	var err error
	switch {
	case p.unnamed && p.force:
		err = p.linkOver()
	case p.unnamed:
		err = p.linkNew(p.procPath())
	case p.force:
		if err = os.Rename(p.Name(), p.dest); err != nil {
			err = fmt.Errorf("rename %s to %s: %w", p.Name(), p.dest, err)
		}
	default:
		// link(2) is the no-replace rename every file system has (renameat2's RENAME_NOREPLACE
		// is missing on NFS); the temporary name goes once the image has its own.
		if err = p.linkNew(p.Name()); err == nil {
			os.Remove(p.Name())
		}
	}
	if err != nil {
		return err
	}
	p.done = true
	return p.Close()
}

// procPath names the open file through /proc: linkat through it works without the capability
// that AT_EMPTY_PATH needs.
func (p *pendingFile) procPath() string { return "/proc/self/fd/" + strconv.Itoa(int(p.Fd())) }

// linkNew gives the file the destination's name only if nothing has it: the check in
// createPending is long past, and of two builds racing to the same new path exactly one must
// win (issue 12), not the later one silently.
func (p *pendingFile) linkNew(src string) error {
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, p.dest, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("output %s was created while this build ran (by another build?): use --force to replace it", p.dest)
	}
	if err != nil {
		return fmt.Errorf("name output %s: %w", p.dest, err)
	}
	return nil
}

// linkOver names an O_TMPFILE file under a temporary name, then renames it over the
// destination, so that replacing an existing image (--force) is atomic. The temporary name is
// random: builds in one process, or on two hosts sharing the directory, must not collide.
func (p *pendingFile) linkOver() error {
	var tmp string
	for try := 0; ; try++ {
		tmp = filepath.Join(filepath.Dir(p.dest), "."+filepath.Base(p.dest)+".tmp-"+randomSuffix())
		err := unix.Linkat(unix.AT_FDCWD, p.procPath(), unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || try == 10 {
			return fmt.Errorf("name output %s: %w", p.dest, err)
		}
	}
	if err := os.Rename(tmp, p.dest); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, p.dest, err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// discard removes the file unless it was committed; safe to call more than once.
func (p *pendingFile) discard() {
	if p.done {
		return
	}
	p.Close()
	if !p.unnamed {
		os.Remove(p.Name())
	}
	p.done = true
}
