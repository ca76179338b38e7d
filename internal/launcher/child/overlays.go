package child

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// overlayDirs are the Spec's overlay directories, opened before the staging tmpfs can hide them
// (they may lie under /tmp); overlayfs is given their /proc/self/fd names, which also keeps ':'
// and ',' in a user's path out of its option string.
type overlayDirs struct {
	upper, work int   // -1 without a writable overlay
	lowers      []int // read-only layers, topmost first
}

func openOverlays(ovs []spec.Overlay) (overlayDirs, error) {
	od := overlayDirs{upper: -1, work: -1}
	for _, o := range ovs {
		if o.Image > 0 {
			// Mounted later, in the staging tmpfs: addImages fills the place in.
			od.lowers = append(od.lowers, -1)
			continue
		}
		if o.ReadOnly {
			fd, err := openDir(o.Dir)
			if err == nil && privileged != nil {
				if err = privileged.CheckReadable(fd, o.Dir); err != nil {
					unix.Close(fd)
				}
			}
			if err != nil {
				od.close()
				return od, fmt.Errorf("overlay %s: %w", o.Dir, err)
			}
			od.lowers = append(od.lowers, fd)
			continue
		}
		// Opened again here, without following links and checked, because these descriptors
		// are what overlayfs gets (the parent's belong to the host's mount namespace).
		var err error
		if od.upper, od.work, err = mount.OpenWritableOverlay(o.Dir, os.Getuid(), os.Getgid(), false); err != nil {
			od.close()
			return od, err
		}
	}
	return od, nil
}

// addImages puts the mounted image layers in the places openOverlays kept for them.
func (od *overlayDirs) addImages(ovs []spec.Overlay, images extraImages) error {
	i := 0
	for _, o := range ovs {
		if !o.ReadOnly {
			continue
		}
		if o.Image > 0 {
			if o.Image > len(images.roots) {
				return fmt.Errorf("overlay %s: no image %d", o.Dir, o.Image)
			}
			fd, err := unix.FcntlInt(uintptr(images.roots[o.Image-1]), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("overlay %s: %w", o.Dir, err)
			}
			od.lowers[i] = fd
		}
		i++
	}
	return nil
}

func openDir(p string) (int, error) {
	return unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

func (od overlayDirs) close() {
	for _, fd := range append([]int{od.upper, od.work}, od.lowers...) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// layers returns overlayfs's lowerdir list, upperdir and workdir. The staging upper layer (mount
// points, the merged /etc/passwd) stays on top of the image; with a writable overlay it becomes the
// topmost read-only layer, so that nothing of hpcctl's own is written into the user's directory.
func (od overlayDirs) layers(l layout) (lowers []string, upper, work string) {
	upper, work = l.upper, l.work
	if od.upper >= 0 {
		lowers = append(lowers, l.upper)
		upper, work = mount.FDPath(od.upper), mount.FDPath(od.work)
	}
	for _, fd := range od.lowers {
		lowers = append(lowers, mount.FDPath(fd))
	}
	return append(lowers, l.lower), upper, work
}
