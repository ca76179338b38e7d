package starter

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// admit checks the Spec and the image before anything is mounted; it changes the Spec where it
// must (privileges are the starter's to decide, not the Spec's). The Spec comes from the user's
// hpcctl: everything in it is what the user asks for, nothing is trusted. What could go wrong:
// a check by name, or in hpcctl, could be of another file; every check of the image is made
// here, as root, on the descriptor that will be mounted.
func admit(c *config.Config, s *spec.Spec, img *os.File, id identity) error {
	if err := rules.CheckSpec(c, s, os.Getpid() == 1); err != nil {
		return err
	}
	// The program never keeps a capability, and nothing it runs may gain one.
	s.KeepCapabilities, s.NoNewPrivileges = false, true
	if err := TrustedImage(OwnersOf(c.KernelMountOwners), img, id.uid); err != nil {
		return fmt.Errorf("image %s: the kernel mounts only images that you cannot change (%v); run it with hpcctl --userns, or ask the administrators to install it", s.RootFS.Image, err)
	}
	// The Spec's offset and size are the user's: they could point the kernel at any bytes of
	// the trusted file (a squashfs stored inside the image, say). The partition is found here.
	off, size, err := rules.Partition(img)
	if err != nil {
		return fmt.Errorf("image %s: %w", s.RootFS.Image, err)
	}
	s.RootFS.Offset, s.RootFS.Size = off, size
	if err := checkLimits(c, img); err != nil {
		return err
	}
	return checkPolicy(c, img)
}

// OwnersOf resolves user names and UIDs (kernel_mount_owners) to the owners the starter trusts,
// root included: names through /etc/passwd only, a file root owns (NSS would run code the user
// may influence).
func OwnersOf(names []string) rules.Owners {
	return rules.OwnersOf(names, readPasswd(names))
}

// readPasswd is /etc/passwd when names are to be resolved, else nil.
func readPasswd(names []string) []byte {
	if len(names) == 0 {
		return nil
	}
	b, _ := os.ReadFile("/etc/passwd") // unreadable: names resolve to no one, which trusts less
	return b
}

// TrustedImage reports why the image open as f must not be mounted by the kernel for user, nil
// when it may: the kernel's squashfs driver would parse whatever the file holds, so the file must
// be one the user cannot change, now or while it runs. What could go wrong: a path checked is not
// the file opened, so it checks the open file itself, then the path it is at now (the kernel's
// name for the descriptor, the same inode) for the directories.
func TrustedImage(o rules.Owners, f *os.File, user int) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("it is not a regular file")
	}
	if err := rootFUSE(f); err != nil {
		return err
	}
	real, err := fdPath(int(f.Fd()))
	if err != nil || !filepath.IsAbs(real) || strings.HasSuffix(real, " (deleted)") {
		return fmt.Errorf("it has no path (deleted?)")
	}
	var at unix.Stat_t
	if err := unix.Lstat(real, &at); err != nil || at.Dev != st.Dev || at.Ino != st.Ino {
		return fmt.Errorf("it moved while it was opened")
	}
	return SafePath(o, real, user)
}

// rootFUSE refuses an image on a FUSE file system that a user mounted. Its server (any user may
// run one, through fusermount3) reports whatever owners and modes it likes and may serve other
// bytes at each read: an image there only seems root's. A FUSE mount made by root (CVMFS, say)
// is root's like any other file system.
func rootFUSE(f *os.File) error {
	var sf unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sf); err != nil || sf.Type != unix.FUSE_SUPER_MAGIC {
		return err
	}
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return fmt.Errorf("it is on a FUSE file system whose mounter is unknown")
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil || !rules.MountedByRoot(info, stx.Mnt_id) {
		return fmt.Errorf("it is on a FUSE file system that a user mounted, whose server decides its owners and contents")
	}
	return nil
}

// checkLimits applies limit_container_paths and limit_container_owners to the open image. What
// could go wrong: hpcctl's own check is by name and could have been skipped, so this one goes
// by the descriptor's real path and owner now.
func checkLimits(c *config.Config, img *os.File) error {
	if len(c.LimitContainerPaths) == 0 && len(c.LimitContainerOwners) == 0 {
		return nil
	}
	var st unix.Stat_t
	real, err := fdPath(int(img.Fd()))
	if err == nil {
		err = unix.Fstat(int(img.Fd()), &st)
	}
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return rules.CheckLimits(c, real, st.Uid, readPasswd(c.LimitContainerOwners))
}

// checkPolicy checks the image against the [signature] table with the companion hpcctl-image
// installed with the starter, as root, on the descriptor that will be mounted. What could go
// wrong: a companion the user could replace would say yes to anything, so it must pass the same
// ownership checks as the configuration; it runs with an empty environment and gets only the
// image (descriptor 3).
func checkPolicy(c *config.Config, img *os.File) error {
	if c.Signature.PolicyEmpty() {
		return nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	// Named by its real path in messages (the companion checks paths on the descriptor).
	name, err := fdPath(int(img.Fd()))
	if err != nil {
		return err
	}
	var companion string
	for _, p := range rules.CompanionPaths(exe) {
		if SafePath(rules.Owners{0: true}, p, -1) == nil {
			companion = p
			break
		}
	}
	if companion == "" {
		return fmt.Errorf("image %s: the site's signature policy cannot be checked: no root-owned hpcctl-image installed with the starter", name)
	}
	var stderr bytes.Buffer
	cmd := &exec.Cmd{Path: companion, Args: append([]string{"hpcctl-image", "check-policy"}, c.Signature.CompanionArgs(name)...),
		Env: []string{}, Stderr: &stderr, ExtraFiles: []*os.File{img}}
	if err := cmd.Run(); err != nil {
		return rules.PolicyError(name, stderr.String(), err)
	}
	return nil
}

// fdPath is the kernel's name for the open file fd: where it is now, whatever path opened it.
func fdPath(fd int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
}
