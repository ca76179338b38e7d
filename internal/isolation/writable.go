package isolation

import (
	"fmt"
	"slices"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// checkWritableSandbox refuses --writable for what cannot be written: an image file (hpcctl's
// SIFs carry no writable overlay partition, and squashfs is read-only), or with the other ways
// of writing, which would hide the sandbox's own changes.
func checkWritableSandbox(o Options, img Image) error {
	if !o.WritableSandbox {
		return nil
	}
	if img.Backend != spec.BackendDir {
		return fmt.Errorf("--writable: %s is an image file without a writable overlay partition: give a sandbox directory (hpcctl build --sandbox DIR %s), or use --writable-tmpfs (changes vanish at exit) or --overlay DIR (changes kept in DIR)", img.Path, img.Path)
	}
	if o.Writable || len(o.Overlays) > 0 {
		return fmt.Errorf("--writable runs the sandbox %s itself read-write: leave out --writable-tmpfs and --overlay", img.Path)
	}
	for _, b := range append(slices.Clone(o.Binds), o.EnvBinds...) {
		if b.Image != nil {
			// The sandbox's mounts skip the staging of extra images the overlay root has.
			return fmt.Errorf("--writable: the image bind of %s is not supported in a writable sandbox: bind a directory instead, or run without --writable", b.Source)
		}
	}
	return nil
}
