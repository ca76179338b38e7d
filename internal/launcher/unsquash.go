package launcher

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Unsquash extracts the squashfs at offset in image into a new private temporary directory, for
// machines where the image cannot be mounted, and returns it with the function that removes it.
//
// It runs unsquashfs until hpcctl's own squashfs reader (internal/squashfs) can extract.
func Unsquash(image string, offset int64, log *slog.Logger) (string, func(), error) {
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
	args := []string{"-no-progress", "-quiet", "-d", root, "-o", strconv.FormatInt(offset, 10), image}
	if os.Geteuid() != 0 {
		// A plain user can create neither device nodes nor files owned by others; skip what fails.
		args = append([]string{"-ignore-errors", "-no-xattrs"}, args...)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("unsquashfs", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if _, serr := os.Stat(filepath.Join(root, "bin")); os.Geteuid() == 0 || serr != nil {
			cleanup()
			return "", nil, fmt.Errorf("--unsquash: unsquashfs %s: %w: %s", image, err, strings.TrimSpace(stderr.String()))
		}
		log.Info("unsquashfs reported errors for files a plain user cannot create", "stderr", stderr.String())
	}
	return root, cleanup, nil
}
