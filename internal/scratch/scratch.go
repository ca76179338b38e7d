// Package scratch makes temporary directories that a killed process leaves behind only until the
// next one sweeps them: each directory has a lock file held while it is in use, and the kernel
// drops that lock however its holders end (SIGKILL, the OOM killer, a batch system's time limit).
package scratch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is a directory in use; DIR.lock beside it is locked (flock) while Dir lives.
type Dir struct {
	Path string
	lock *os.File
}

// Make sweeps parent of the prefix* directories whose lock is free, then makes a new one. log
// gets what the sweep removed (debug).
func Make(parent, prefix string, log *slog.Logger) (*Dir, error) {
	sweep(parent, prefix, log, nil)
	var err error
	for try := 0; try < 3; try++ {
		var d *Dir
		if d, err = make1(parent, prefix); err == nil {
			return d, nil
		}
	}
	return nil, err
}

// LockFile is the locked file: a child process that works in the directory and inherits it keeps
// the directory from being swept while it runs, even if its parent is killed.
func (d *Dir) LockFile() *os.File { return d.lock }

// Remove deletes the directory, whatever the modes inside, then its lock.
func (d *Dir) Remove() error {
	err := RemoveAll(d.Path)
	os.Remove(d.Path + ".lock") // best effort: a later sweep takes it
	d.lock.Close()
	return err
}

func make1(parent, prefix string) (*Dir, error) {
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("make a temporary directory in %s: %w", parent, err)
	}
	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err == nil {
		// Another process's sweep may have taken the lock between our open and our flock, and
		// removed both: then the caller tries again.
		err = sameFile(lock, dir+".lock")
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(dir) // best effort: ours, unused
		return nil, fmt.Errorf("lock a temporary directory in %s: %w", parent, err)
	}
	return &Dir{Path: dir, lock: lock}, nil
}

// Sweep removes the prefix* directories of parent that a killed process left (their lock is
// free), as Make does first. It costs one read of parent's directory, cheap enough for every
// launch: a killed user's extracted image then goes at their next run, not only at their next
// --unsquash.
func Sweep(parent, prefix string, log *slog.Logger) { sweep(parent, prefix, log, nil) }

// SweepWith is Sweep for directories that may hold files RemoveAll cannot remove (a killed
// recipe build's, owned by the user's subordinate IDs): remove is tried on a directory whose
// lock is free after RemoveAll failed, while the lock is held. It returns how many directories
// were removed.
func SweepWith(parent, prefix string, log *slog.Logger, remove func(dir string) error) int {
	return sweep(parent, prefix, log, remove)
}

// sweep removes the prefix* directories of parent whose lock is free. Other users' locks cannot be
// opened, so their directories stay.
func sweep(parent, prefix string, log *slog.Logger, remove func(string) error) int {
	n := 0
	locks, _ := filepath.Glob(filepath.Join(parent, prefix+"*.lock"))
	for _, l := range locks {
		f, err := os.OpenFile(l, os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if ours(f) && unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			dir := strings.TrimSuffix(l, ".lock")
			err := RemoveAll(dir)
			if err != nil && remove != nil {
				err = remove(dir)
			}
			if err == nil {
				os.Remove(l) // best effort
				n++
				log.Debug("removed a temporary directory a killed process left", "dir", dir)
			} else {
				log.Debug("cannot remove a temporary directory a killed process left", "dir", dir, "err", err)
			}
		}
		f.Close()
	}
	return n
}

// ours reports whether this user owns the lock file: in a shared directory (/tmp), another user's
// files are theirs to sweep.
func ours(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && int(st.Uid) == os.Geteuid()
}

// RemoveAll is os.RemoveAll for a tree whose directories may lack the owner's write or search
// bit (an image's read-only directories, extracted): it restores them first.
func RemoveAll(dir string) error {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck // best effort before RemoveAll
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700) //nolint:errcheck // same
		}
		return nil
	})
	return os.RemoveAll(dir)
}

func sameFile(f *os.File, path string) error {
	a, err := f.Stat()
	if err != nil {
		return err
	}
	b, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !os.SameFile(a, b) {
		return errors.New("lock file replaced")
	}
	return nil
}
