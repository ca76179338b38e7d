package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// prepareOverlays checks the --overlay directories and creates a writable overlay's upper and
// work directories, with the user's own rights, before anything is mounted. A writable overlay must
// be the user's own: the container's changes are written there.
func prepareOverlays(ovs []spec.Overlay) error {
	for _, o := range ovs {
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
		st, err := os.Stat(o.Dir)
		if err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Getuid() {
			return fmt.Errorf("overlay %s belongs to UID %d, not to you: a writable overlay must be your own directory", o.Dir, uid)
		}
		for _, sub := range []string{"upper", "work"} {
			if err := os.Mkdir(filepath.Join(o.Dir, sub), 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("overlay: %w", err)
			}
		}
	}
	return nil
}
