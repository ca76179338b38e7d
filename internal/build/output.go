package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pendingFile is an output written under a temporary name in the destination directory and
// renamed into place only when complete, so that an interrupted build never leaves a partial
// image and never clobbers an existing one before the new one is whole.
type pendingFile struct {
	*os.File
	dest string
	done bool
}

// createPending checks the destination and opens a temporary file beside it.
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
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create output in %s: %w (check the directory exists and is writable)", filepath.Dir(dest), err)
	}
	return &pendingFile{File: f, dest: dest}, nil
}

// commit makes the file durable and gives it its final name and mode.
func (p *pendingFile) commit() error {
	if err := p.Chmod(0o755); err != nil {
		return fmt.Errorf("output %s: %w", p.Name(), err)
	}
	if err := p.Sync(); err != nil {
		return fmt.Errorf("output %s: sync: %w", p.Name(), err)
	}
	if err := p.Close(); err != nil {
		return fmt.Errorf("output %s: %w", p.Name(), err)
	}
	if err := os.Rename(p.Name(), p.dest); err != nil {
		return fmt.Errorf("rename %s to %s: %w", p.Name(), p.dest, err)
	}
	p.done = true
	return nil
}

// discard removes the temporary file unless it was committed; safe to call more than once.
func (p *pendingFile) discard() {
	if p.done {
		return
	}
	p.Close()
	os.Remove(p.Name())
	p.done = true
}
