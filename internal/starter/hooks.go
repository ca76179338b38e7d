package starter

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// hooks are the starter's steps inside the setup stage (child.Privileged).
type hooks struct {
	id identity
}

// MountImage attaches (or shares) the loop device and mounts the image, both as root: the loop
// devices are root's. What could go wrong: img is the descriptor admit checked (a file the user
// cannot change), so the kernel parses only that; target is the stage's own staging directory.
// The mount is read-only, nosuid and nodev, so a setuid file in the image is inert.
func (h *hooks) MountImage(s *spec.Spec, img *os.File, target string) error {
	return h.id.asRoot(func() error {
		dev, path, err := mount.AttachShared(img, s.RootFS.Offset, s.RootFS.Size, mount.LoopLock)
		if err != nil {
			return err
		}
		// The mount holds the device from here on; autoclear detaches it after the last unmount.
		defer dev.Close()
		err = mount.Mount(path, target, "squashfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
		if errors.Is(err, unix.EIO) {
			return fmt.Errorf("image %s: its squashfs file system is damaged (the kernel cannot read its root inode): copy or build it again", s.RootFS.Image)
		}
		if err != nil {
			return fmt.Errorf("mount the image %s: %w (is it a squashfs image?)", s.RootFS.Image, err)
		}
		return nil
	})
}

// WithSetupCaps runs f with exactly CAP_SYS_ADMIN, CAP_DAC_OVERRIDE and CAP_MKNOD in this
// thread's effective set, the capabilities the user namespace path gives its setup stage for the
// same two steps, then restores the set. Exactly: overlayfs keeps its mounter's credentials for
// all its later work. What could go wrong: with them, permission checks pass anywhere; the steps
// run under them touch only the private staging tmpfs, the image (resolved inside its root) and
// descriptors opened and checked as the user before.
func (h *hooks) WithSetupCaps(f func() error) error {
	saved, err := setEffective([]uintptr{unix.CAP_SYS_ADMIN, unix.CAP_DAC_OVERRIDE, unix.CAP_MKNOD})
	if err != nil {
		return err
	}
	err = f()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err2 := unix.Capset(&hdr, &saved[0]); err2 != nil {
		// Continuing would run the rest of the setup with CAP_DAC_OVERRIDE.
		fmt.Fprintf(os.Stderr, "hpcctl-starter: lower capabilities: %v\n", err2)
		os.Exit(1)
	}
	return err
}

// SecureBind adds nosuid, and nodev unless the source is a host device under /dev (the
// container's /dev and its nodes, whose own modes still apply), to a bind and every mount
// below it. What could go wrong: root's bind keeps the source mount's flags, and a user's
// directory on a suid mount would otherwise give a setuid file of theirs its power inside. The
// exception is decided by where the source opened as src really is, not by the path the Spec
// gives (the user's "/dev/../home/me" or a link in /dev/shm), and never for the user-writable
// /dev/shm and /dev/mqueue.
func (h *hooks) SecureBind(fd, src int) error {
	attr := uint64(unix.MOUNT_ATTR_NOSUID)
	if !hostDevice(src) {
		attr |= unix.MOUNT_ATTR_NODEV
	}
	err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if err != nil {
		return fmt.Errorf("make it nosuid: %w", err)
	}
	if attr&unix.MOUNT_ATTR_NODEV != 0 {
		return nil
	}
	// A recursive bind of /dev brings the host's /dev/shm and /dev/mqueue, which any user can
	// write: those stay nodev (the lookup lands on the topmost mount there; none is fine).
	for _, w := range rules.UserWritableDev {
		err := unix.MountSetattr(fd, w, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV})
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("make /dev/%s nodev: %w", w, err)
		}
	}
	return nil
}

// hostDevice reports whether the bind source open as src (-1: inside the image) is a host
// device, by where it really is (the kernel's name for the descriptor), not by the Spec's path.
func hostDevice(src int) bool {
	if src < 0 {
		return false
	}
	p, err := fdPath(src)
	return err == nil && rules.HostDevice(p)
}

// CheckReadable asks the kernel whether the user (the real IDs, faccessat without AT_EACCESS)
// may read and search the directory open as fd: overlayfs reads a lower layer with its mounter's
// credentials. What could go wrong: a directory the user can only traverse (mode 0711, say)
// would become a layer whose listing and files they could read.
func (h *hooks) CheckReadable(fd int, name string) error {
	if err := unix.Faccessat2(fd, "", unix.R_OK|unix.X_OK, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("you cannot read it: %w", err)
	}
	return nil
}

// Drop drops every privilege (identity.drop).
func (h *hooks) Drop() error { return h.id.drop() }
