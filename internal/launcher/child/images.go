package child

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// receiveExtras takes the descriptors of the Spec's extra images, which the parent sends after
// the root image's, in order.
func receiveExtras(n int) ([]*os.File, error) {
	var fs []*os.File
	for range n {
		m, err := Receive(SocketFD)
		if err == nil && (m == nil || m.Kind != MsgImage || m.File == nil) {
			err = errors.New("no image descriptor")
		}
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return nil, fmt.Errorf("receive the bound and overlay images from hpcctl: %w", err)
		}
		fs = append(fs, m.File)
	}
	return fs, nil
}

// extraImages are the Spec's extra images, mounted read-only in the staging tmpfs.
type extraImages struct {
	roots []int // their root directories, open (O_PATH)
}

func (e extraImages) close() {
	for _, fd := range e.roots {
		unix.Close(fd)
	}
}

// mountExtras mounts each extra image under the staging tmpfs the way the root image is
// mounted: with the kernel on a loop device as root outside a user namespace, else with
// squashfuse_ll, which the parent starts on the connection sent to it.
func mountExtras(s *spec.Spec, files []*os.File, log *stepLog) (extraImages, error) {
	var e extraImages
	if len(s.Images) == 0 {
		return e, nil
	}
	if privileged != nil {
		// hpcctl takes the user-namespace path for them (wantsImages); this is the backstop.
		return e, errors.New("image binds and image overlays are not available through the setuid starter: run with --userns")
	}
	if len(files) != len(s.Images) {
		return e, fmt.Errorf("received %d of the %d bound and overlay images from hpcctl", len(files), len(s.Images))
	}
	dir := filepath.Join(stagingDir, "images")
	if err := mkdirs(dir); err != nil {
		return e, err
	}
	kernel := !s.Namespaces.User && os.Geteuid() == 0
	for i, f := range files {
		im := s.Images[i]
		target := filepath.Join(dir, strconv.Itoa(i+1))
		if err := mkdirs(target); err != nil {
			e.close()
			return extraImages{}, err
		}
		how := "squashfuse,ro"
		mountOne := func() error { return mountExtraFUSE(i+1, target) }
		if kernel {
			how = "loop,ro"
			mountOne = func() error { return mountExtraLoop(im, f, target) }
		}
		if err := log.done(Step{Step: "image", Source: im.Path, Target: target, Flags: how}, mountOne()); err != nil {
			e.close()
			return extraImages{}, fmt.Errorf("image %s: %w", im.Path, err)
		}
		fd, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			e.close()
			return extraImages{}, fmt.Errorf("image %s: %w", im.Path, err)
		}
		e.roots = append(e.roots, fd)
	}
	return e, nil
}

func mountExtraLoop(im spec.Image, f *os.File, target string) error {
	dev, path, err := mount.AttachLoop(f, im.Offset, im.Size)
	if err != nil {
		return err
	}
	// The mount stays the device's only user: autoclear detaches it with the mount namespace.
	defer dev.Close()
	if err := mount.Mount(path, target, "squashfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("%w (is it a squashfs image?)", err)
	}
	return nil
}

// mountExtraFUSE mounts a FUSE connection at target and sends it to the parent, tagged with the
// image's number, for a squashfuse_ll of that image; requests wait in the kernel until it serves.
func mountExtraFUSE(n int, target string) error {
	dev, err := mount.MountFUSE(target, "squashfuse", os.Getuid(), os.Getgid())
	if err != nil {
		return err
	}
	// From here on squashfuse_ll holds the only copy, so that its death ends the connection.
	defer dev.Close()
	if err := SendFDText(SocketFD, MsgFUSE, strconv.Itoa(n), int(dev.Fd())); err != nil {
		return fmt.Errorf("hand the FUSE connection to hpcctl: %w", err)
	}
	return nil
}

// bindImage binds the directory m.Source of the extra image m.Image onto dst.
func bindImage(m spec.Mount, e extraImages, dst int) error {
	if m.Image < 1 || m.Image > len(e.roots) {
		return fmt.Errorf("image bind at %s: no image %d", m.Destination, m.Image)
	}
	src, err := mount.OpenInRoot(e.roots[m.Image-1], m.Source, mount.CreateNothing)
	if err != nil {
		return fmt.Errorf("image-src=%s: %w", m.Source, err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("image-src=%s is not a directory in the image: bind a directory", m.Source)
	}
	return mount.Bind(src, dst, true)
}
