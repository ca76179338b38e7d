package child

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// writableRoot makes the sandbox directory open as sandbox the container root, read-write
// (--writable): bound at the staging root without an overlay, so the program's changes are the
// directory's. hpcctl writes nothing into it: the merged /etc/passwd and /etc/group are files of
// a private tmpfs bound over the sandbox's own, and mounts whose mount points it lacks are skipped
// with a warning.
func writableRoot(s *spec.Spec, sandbox int, srcs sources, l layout, log *stepLog) error {
	err := mount.Mount(mount.FDPath(sandbox), l.root, "", unix.MS_BIND|unix.MS_REC, "")
	if err = log.done(Step{Step: "image", Source: s.RootFS.Image, Target: l.root, Flags: "dir,rw"}, err); err != nil {
		return fmt.Errorf("bind the sandbox directory: %w", err)
	}
	root, err := unix.Open(l.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container root: %w", err)
	}
	defer unix.Close(root)
	// As the overlay root is: programs in the sandbox gain nothing from setuid bits or devices.
	locked, err := mount.LockedFlags(root)
	if err == nil {
		err = mount.Mount("", l.root, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV|locked, "")
	}
	if err = log.done(Step{Step: "remount", Target: "/", Flags: "bind,remount,nosuid,nodev"}, err); err != nil {
		return fmt.Errorf("make the sandbox nosuid: %w", err)
	}
	if s.Identity != nil {
		if err := withSetupCaps(func() error { return bindIdentity(root, s.Identity, l) }); err != nil {
			return err
		}
	}
	if err := applyMounts(root, s.Mounts, srcs, extraImages{}, true, log); err != nil {
		return err
	}
	return log.done(Step{Step: "pivot_root", Source: l.root, Target: "/"}, pivot(l.root))
}

// bindIdentity binds, over the sandbox's /etc/passwd and /etc/group, copies with the user's
// entries merged in, written to a tmpfs of their own (the staging tmpfs is unbindable). A
// sandbox without the file keeps it missing.
func bindIdentity(root int, id *spec.Identity, l layout) error {
	if err := stageUpper(l); err != nil {
		return fmt.Errorf("identity files: %w", err)
	}
	for _, f := range []struct {
		name  string
		lines []string
	}{{"/etc/passwd", []string{id.Passwd}}, {"/etc/group", id.Groups}} {
		dst, err := mount.OpenInRoot(root, f.name, mount.CreateNothing)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s in the sandbox: %w", f.name, err)
		}
		err = bindMerged(dst, f.name, f.lines, id.AddMissing, l)
		unix.Close(dst)
		if err != nil {
			return fmt.Errorf("add your entries to %s in the container: %w", f.name, err)
		}
	}
	return nil
}

func bindMerged(dst int, name string, lines []string, addOnly bool, l layout) error {
	old, err := os.ReadFile(mount.FDPath(dst))
	if err != nil {
		return err
	}
	merged := MergeEntries(string(old), lines)
	if addOnly {
		merged = AddEntries(string(old), lines)
	}
	file := filepath.Join(l.rw, filepath.Base(name))
	if err = os.WriteFile(file, []byte(merged), 0o644); err != nil {
		return err
	}
	src, err := unix.Open(file, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	return mount.Bind(src, dst, false)
}
