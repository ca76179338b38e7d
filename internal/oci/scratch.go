package oci

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// scratch is one process's directory for containers/image's big temporary files (an unpacked
// oci-archive, staged blobs) under the cache's tmp/, made on first use. While the process lives
// it holds a lock on DIR.lock; the kernel drops that lock however the process ends, so a
// directory whose lock is free was left by a process that could not clean up (SIGKILL, a node
// crash), and the next pull removes it: an interrupted build of a large image must not leave
// gigabytes in a home directory's quota for ever.
type scratch struct {
	parent string // the cache's tmp/
	log    *slog.Logger
	dir    string
	lock   *os.File
}

// use points sys's temporary files at the directory, making it (and sweeping the abandoned ones)
// on the first call.
func (s *scratch) use(sys *types.SystemContext) error {
	if s.dir == "" {
		s.sweep()
		var err error
		for try := 0; s.dir == ""; try++ {
			if s.dir, s.lock, err = makeScratch(s.parent); err != nil && try == 2 {
				return err
			}
		}
	}
	sys.BigFilesTemporaryDir = s.dir
	return nil
}

// makeScratch makes a directory and locks its lock file.
func makeScratch(parent string) (string, *os.File, error) {
	dir, err := os.MkdirTemp(parent, "pull-")
	if err != nil {
		return "", nil, fmt.Errorf("make a temporary directory in the image cache: %w", err)
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
		os.RemoveAll(dir) //nolint:errcheck // best effort: ours, unused
		return "", nil, fmt.Errorf("lock a temporary directory in the image cache: %w", err)
	}
	return dir, lock, nil
}

// release removes the directory and its lock.
func (s *scratch) release() {
	if s.dir == "" {
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Warn("remove the temporary directory", "dir", s.dir, "err", err)
	}
	os.Remove(s.dir + ".lock") //nolint:errcheck // best effort; a later sweep takes it
	s.lock.Close()
	s.dir, s.lock = "", nil
}

// sweep removes the directories whose owners are gone (their lock is free).
func (s *scratch) sweep() {
	locks, _ := filepath.Glob(filepath.Join(s.parent, "pull-*.lock"))
	for _, l := range locks {
		f, err := os.OpenFile(l, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			dir := strings.TrimSuffix(l, ".lock")
			if err := os.RemoveAll(dir); err == nil {
				os.Remove(l) //nolint:errcheck // best effort
				s.log.Debug("removed a temporary directory an interrupted pull left", "dir", dir)
			}
		}
		f.Close()
	}
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
