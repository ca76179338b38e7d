package child

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// stagingDir is where the child mounts a private tmpfs to assemble the root. Anything it covers
// stays reachable: bind sources are opened before it is mounted, and the host tree is dropped by
// pivot_root anyway. /tmp exists on every host and is never the image.
const stagingDir = "/tmp"

// layout names the directories inside the staging tmpfs.
type layout struct {
	lower, rw, upper, work, root string
}

func newLayout() layout {
	return layout{
		lower: filepath.Join(stagingDir, "lower"),
		rw:    filepath.Join(stagingDir, "rw"),
		upper: filepath.Join(stagingDir, "rw", "upper"),
		work:  filepath.Join(stagingDir, "rw", "work"),
		root:  filepath.Join(stagingDir, "root"),
	}
}

// setupRoot builds the container's root and mounts in the child's mount namespace, then pivots
// into it. The root is an overlay: the image below, a private tmpfs above that only ever receives
// what hpcctl puts there (mount points missing from the image, the merged /etc/passwd), and it is
// made read-only before the program runs unless the Spec asks for a writable root.
//
// session, when not nil, is a detached mount of the image from a shared image session; it is
// moved into place instead of mounting the image.
func setupRoot(s *spec.Spec, img, session *os.File, extras []*os.File, log *stepLog) error {
	// Only the loop device needs the image past this point (the FUSE server has the parent's copy).
	defer img.Close()
	defer func() {
		for _, f := range extras {
			f.Close()
		}
	}()
	if session != nil {
		defer session.Close()
	}
	// Mounts made from here on must not propagate back to the host, nor the host's to us by
	// surprise: slave keeps host unmounts arriving (an NFS automount going away) and sends nothing back.
	if err := log.done(Step{Step: "propagation", Target: "/", Flags: "rec,slave"}, mount.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")); err != nil {
		return err
	}
	var fuse *os.File
	var err error
	if session == nil {
		if fuse, err = startFUSE(s); err != nil {
			return err
		}
	}
	if fuse != nil {
		defer fuse.Close()
	}
	srcs, err := openSources(s.Mounts, log)
	if err != nil {
		return err
	}
	defer srcs.close()
	image, err := openSandbox(s.RootFS)
	if err != nil {
		return err
	}
	if image >= 0 {
		defer unix.Close(image)
	}
	overlays, err := openOverlays(s.Overlays)
	if err != nil {
		return err
	}
	defer overlays.close()
	l := newLayout()
	if err = log.done(Step{Step: "staging", Source: "tmpfs", Target: stagingDir, Flags: "nosuid,nodev,unbindable,mode=0755"}, stage(l)); err != nil {
		return err
	}
	if s.RootFS.Writable {
		return writableRoot(s, image, srcs, l, log)
	}
	if session != nil {
		err = log.done(Step{Step: "image", Source: s.RootFS.Image, Target: l.lower, Flags: "session,ro"}, moveSessionMount(session, l.lower))
	} else {
		err = log.done(Step{Step: "image", Source: s.RootFS.Image, Target: l.lower, Flags: string(s.RootFS.Backend) + ",ro"}, mountImage(s, img, image, fuse, l.lower))
	}
	if err != nil {
		return err
	}
	if err = checkImageRoot(s.RootFS, l.lower); err != nil {
		return err
	}
	images, err := mountExtras(s, extras, log)
	if err != nil {
		return err
	}
	defer images.close()
	if err = overlays.addImages(s.Overlays, images); err != nil {
		return err
	}
	if err = stageUpper(l); err != nil {
		return err
	}
	if err = withSetupCaps(func() error { return prepareUpper(s, l, srcs) }); err != nil {
		return err
	}
	if err = withSetupCaps(func() error { return mountOverlay(s, l, overlays, log) }); err != nil {
		return err
	}
	root, err := unix.Open(l.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container root: %w", err)
	}
	defer unix.Close(root)
	if err := applyMounts(root, s.Mounts, srcs, images, false, log); err != nil {
		return err
	}
	if !s.WritableRoot {
		if err := log.done(Step{Step: "remount", Target: "/", Flags: "bind,remount,ro"}, mount.RemountReadOnly(root)); err != nil {
			return fmt.Errorf("make the container root read-only: %w", err)
		}
	}
	return log.done(Step{Step: "pivot_root", Source: l.root, Target: "/"}, pivot(l.root))
}

// stage mounts the staging tmpfs and makes its directories.
func stage(l layout) error {
	if err := mount.Mount("tmpfs", stagingDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	// Unbindable: a recursive bind of a host directory holding the staging directory (the default
	// bind of /tmp) would otherwise copy the staging tree, the container root included, into the
	// container; the kernel prunes unbindable mounts from recursive binds.
	if err := mount.Mount("", stagingDir, "", unix.MS_UNBINDABLE, ""); err != nil {
		return err
	}
	return mkdirs(l.lower, l.rw, l.root)
}

// stageUpper gives the overlay's upper layer a tmpfs of its own: overlayfs clones the upper mount,
// and the kernel refuses to clone an unbindable one. It runs after the image is mounted, so that
// squashfuse_ll starts meanwhile.
func stageUpper(l layout) error {
	if err := mount.Mount("tmpfs", l.rw, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	return mkdirs(l.upper, l.work)
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("staging directory: %w", err)
		}
	}
	return nil
}

// openSandbox opens a sandbox directory image before the staging tmpfs can hide it. The parent's
// descriptor will not do: it belongs to the host's mount namespace, and the kernel binds only
// from the caller's own (EINVAL).
func openSandbox(r spec.RootFS) (int, error) {
	if r.Backend != spec.BackendDir {
		return -1, nil
	}
	fd, err := unix.Open(r.Image, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the sandbox image %s: %w", r.Image, err)
	}
	return fd, nil
}

// startFUSE opens the FUSE connection of the squashfuse backend and hands it to the parent at
// once, so that squashfuse_ll starts while the rest of the root is prepared; the mount waits for
// its answer. It returns nil (and mountSquashfuse does it all) when the kernel cannot do this.
func startFUSE(s *spec.Spec) (*os.File, error) {
	if s.RootFS.Backend != spec.BackendSquashfuse {
		return nil, nil
	}
	// Until the mount, our copy keeps the connection alive whatever happens to the server: if
	// hpcctl died (and squashfuse_ll with it), the mount would wait for ever. If it is already gone,
	// sending the connection fails.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return nil, fmt.Errorf("set the parent-death signal: %w", err)
	}
	dev, ok := mount.OpenSyncFUSE()
	if !ok {
		return nil, clearDeathSignal()
	}
	if err := SendFD(SocketFD, MsgFUSE, int(dev.Fd())); err != nil {
		dev.Close()
		return nil, fmt.Errorf("hand the FUSE connection to hpcctl: %w", err)
	}
	return dev, nil
}

// clearDeathSignal undoes startFUSE's parent-death signal once the connection is mounted and our
// copy closed: the program must outlive hpcctl as it would anywhere else.
func clearDeathSignal() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear the parent-death signal: %w", err)
	}
	return nil
}

// mountImage mounts the image read-only at target with the Spec's backend; img is the image file
// from the parent, sandbox the open sandbox directory for BackendDir, fuse the connection from
// startFUSE.
func mountImage(s *spec.Spec, img *os.File, sandbox int, fuse *os.File, target string) error {
	switch s.RootFS.Backend {
	case spec.BackendLoop:
		return mountLoop(s, img, target)
	case spec.BackendSquashfuse:
		if fuse != nil {
			err := mount.MountFUSEConn(fuse, target, "squashfuse", os.Getuid(), os.Getgid())
			// From here on squashfuse_ll holds the only copy, so that its death ends the connection.
			fuse.Close()
			if err != nil {
				return fmt.Errorf("mount the image with FUSE: %w", err)
			}
			return clearDeathSignal()
		}
		return mountSquashfuse(target)
	case spec.BackendDir:
		if err := mount.Mount(mount.FDPath(sandbox), target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind the sandbox directory: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown mount backend %q", s.RootFS.Backend)
}

// moveSessionMount moves the session's detached mount (open_tree(OPEN_TREE_CLONE) in the holder:
// the root of an anonymous mount namespace) to target in this mount namespace. The kernel lets
// the holder of CAP_SYS_ADMIN over its own mount namespace attach such a mount
// (do_move_mount), whichever user namespace made it; the FUSE mount under it was made without
// allow_other, so it serves this process, whose uids are the holder's.
func moveSessionMount(m *os.File, target string) error {
	if err := unix.MoveMount(int(m.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the shared image session's mount at %s: %w (run with --no-session)", target, err)
	}
	return nil
}

// checkImageRoot reads the root directory of the image mounted at target. squashfuse_ll serves an
// image whose inode or directory table is damaged, and every lookup then fails with ENOENT or EIO:
// the user saw "/bin/sh: no such file or directory" (exit 127) for a damaged image, and root a
// failed mount point. The first lookups need the root inode and directory anyway, so reading them
// here costs one FUSE round trip.
func checkImageRoot(r spec.RootFS, target string) error {
	if r.Backend == spec.BackendDir {
		return nil
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = readAllDir(fd)
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("image %s: its squashfs file system is damaged (its root directory cannot be read: %s): copy or build it again", r.Image, errnoText(err))
	}
	return nil
}

// readAllDir reads the squashfs directory open as fd to its end. The kernel's squashfs returns
// "." and ".." before it reads the directory table, and on a damaged table it logs the error and
// ends the listing there without one (fs/squashfs/dir.c): a directory whose size says it has
// entries (an empty one is 3 bytes) but that lists none is damaged.
func readAllDir(fd int) error {
	buf := make([]byte, 8192)
	entries := 0
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		_, count, _ := unix.ParseDirent(buf[:n], -1, nil)
		entries += count
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if entries == 0 && st.Size > 3 {
		return unix.EIO
	}
	return nil
}

func mountLoop(s *spec.Spec, img *os.File, target string) error {
	if privileged != nil {
		return privileged.MountImage(s, img, target)
	}
	// The device another container of this image (root's or the starter's) already uses, so
	// that the kernel mounts the same superblock: one page cache for all of them (issue 14).
	dev, path, err := mount.AttachShared(img, s.RootFS.Offset, s.RootFS.Size, mount.LoopLock)
	if err != nil {
		return err
	}
	// Closing our descriptor leaves the mounts as the device's only users: autoclear detaches the
	// device when the last mount namespace using it, and with it the mount, goes away.
	defer dev.Close()
	err = mount.Mount(path, target, "squashfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	if errors.Is(err, unix.EIO) {
		// The kernel reads the root inode at mount time: a damaged inode table fails here.
		return fmt.Errorf("image %s: its squashfs file system is damaged (the kernel cannot read its root inode: %s): copy or build it again", s.RootFS.Image, errnoText(err))
	}
	if err != nil {
		return fmt.Errorf("mount the image %s: %w (is it a squashfs image?)", s.RootFS.Image, err)
	}
	return nil
}

// mountSquashfuse mounts the FUSE file system here, where the user namespace gives us
// CAP_SYS_ADMIN, and sends the connection to the parent, which runs and supervises squashfuse_ll
// outside. Requests queue in the kernel until the server answers.
func mountSquashfuse(target string) error {
	dev, err := mount.MountFUSE(target, "squashfuse", os.Getuid(), os.Getgid())
	if err != nil {
		return fmt.Errorf("mount the image with FUSE: %w", err)
	}
	defer dev.Close()
	if err := SendFD(SocketFD, MsgFUSE, int(dev.Fd())); err != nil {
		return fmt.Errorf("hand the FUSE connection to hpcctl: %w", err)
	}
	return nil
}

func mountOverlay(s *spec.Spec, l layout, od overlayDirs, log *stepLog) error {
	lowers, upper, work := od.layers(l)
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), upper, work)
	if s.Namespaces.User || privileged != nil {
		// In a user namespace overlayfs keeps its metadata in user.* xattrs (trusted.* needs
		// CAP_SYS_ADMIN in the initial namespace).
		data += ",userxattr"
	}
	err := mount.Mount("overlay", l.root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, data)
	if err = log.done(Step{Step: "overlay", Source: "overlay", Target: l.root, Flags: "nosuid,nodev," + data}, err); err != nil {
		return fmt.Errorf("assemble the container root: %w", err)
	}
	return nil
}

// pivot makes dir the root. pivot_root(".", ".") stacks the old root on the new one, and the
// detach drops it with everything mounted under it (the staging tmpfs included).
func pivot(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("enter the container root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the container: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host root: %w", err)
	}
	return unix.Chdir("/")
}
