package launcher

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// Unsquash extracts the squashfs at offset..offset+size of the open image f into a private
// temporary directory with hpcctl's own reader, for machines that can mount neither with the
// kernel nor with FUSE. It returns the root and a cleanup that removes it.
func Unsquash(f *os.File, offset, size int64, log *slog.Logger) (string, func(), error) {
	image := f.Name()
	r, err := squashfs.Open(io.NewSectionReader(f, offset, size), size)
	if err != nil {
		return "", nil, fmt.Errorf("--unsquash: %s: %w", image, err)
	}
	tmp, err := os.MkdirTemp("", "hpcctl-unsquash-")
	if err != nil {
		return "", nil, fmt.Errorf("--unsquash: %w", err)
	}
	cleanup := func() {
		// Extracted directories may lack the owner's write bit; restore it so they can be removed.
		filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // best effort before RemoveAll
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700) //nolint:errcheck // same
			}
			return nil
		})
		if err := os.RemoveAll(tmp); err != nil {
			log.Warn("remove the extracted image", "dir", tmp, "err", err)
		}
	}
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--unsquash: %w", err)
	}
	// Set-id bits are kept so the image's programs see the modes the image says: extracted by a
	// plain user the files are that user's own, so the bits grant nothing.
	if err := squashfs.Extract(r, root, squashfs.ExtractOptions{KeepSetuid: true, Xattrs: os.Geteuid() == 0, Logger: log}); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--unsquash: extract %s: %w", image, err)
	}
	return root, cleanup, nil
}
