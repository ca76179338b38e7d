package cli

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// prepareOverlays checks the --overlay directories and creates a writable overlay's upper and
// work directories, with the user's own rights, before anything is mounted. A writable overlay must
// be the user's own: the container's changes are written there.
func prepareOverlays(ovs []spec.Overlay) error {
	for _, o := range ovs {
		if o.Image > 0 {
			continue // an image file, located by resolveImages
		}
		if o.ReadOnly {
			st, err := os.Stat(o.Dir)
			if err != nil {
				return fmt.Errorf("overlay %s: %w", o.Dir, err)
			}
			if !st.IsDir() {
				return fmt.Errorf("overlay %s is not a directory (hpcctl overlays are directories)", o.Dir)
			}
			continue
		}
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		// The child opens and checks them again in its own mount namespace, and mounts those
		// descriptors; this early pass creates upper and work and gives the one-line error.
		upper, work, err := mount.OpenWritableOverlay(o.Dir, os.Getuid(), os.Getgid(), true)
		if err != nil {
			return err
		}
		unix.Close(upper)
		unix.Close(work)
	}
	return nil
}
