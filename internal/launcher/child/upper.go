package child

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// prepareUpper puts into the overlay's upper directory, before the overlay is mounted, the mount
// points the image lacks and the merged /etc/passwd and /etc/group. Writing the upper directory
// directly needs no permission on the image's directories, which inside a user namespace belong
// to an unmapped owner (root) and could not be written through the overlay.
func prepareUpper(s *spec.Spec, l layout, ss sources) error {
	lower, err := unix.Open(l.lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the image root: %w", err)
	}
	defer unix.Close(lower)
	u := upperWriter{lower: lower, lowerDir: l.lower, upperDir: l.upper}
	// The upper directory is the merged root: give it the image's mode.
	var st unix.Stat_t
	if err := unix.Fstat(lower, &st); err == nil {
		unix.Chmod(l.upper, st.Mode&0o7777) //nolint:errcheck // cosmetic
	}
	for i, m := range s.Mounts {
		// Mount points inside a file system of the Spec's own (a tmpfs /dev, a fresh /proc) are
		// made there, or exist there, at mount time.
		if skipped(m, ss[i]) || m.Kind == spec.KindSymlink || coveringKind(s.Mounts, i) != "" && coveringKind(s.Mounts, i) != spec.KindBind {
			continue
		}
		err := u.mountPoint(m.Destination, isDirMount(m, ss[i]))
		if err != nil && skipOptional(m, err) {
			// applyMounts finds the mount point missing too, and skips the mount there.
			continue
		}
		if err != nil {
			return optionalFailed(m, fmt.Errorf("mount point %s: %w", m.Destination, err))
		}
	}
	if s.Identity != nil {
		if err := u.identity(s.Identity); err != nil {
			return err
		}
	}
	return nil
}

type upperWriter struct {
	lower              int
	lowerDir, upperDir string
}

// resolve finds the longest prefix of p that exists in the image, following symlinks inside the
// image only, and returns its real path and the missing components after it.
func (u upperWriter) resolve(p string) (real string, missing []string, err error) {
	comps := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	if p == "/" {
		comps = nil
	}
	real = "/"
	for i := range comps {
		fd, err := unix.Openat2(u.lower, "/"+strings.Join(comps[:i+1], "/"), &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.ENOENT) {
			return real, comps[i:], nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("in the image: %w", err)
		}
		real, err = u.realPath(fd)
		unix.Close(fd)
		if err != nil {
			return "", nil, err
		}
	}
	return real, nil, nil
}

// realPath names, relative to the image root, the file open as fd inside the lower mount.
func (u upperWriter) realPath(fd int) (string, error) {
	target, err := os.Readlink(mount.FDPath(fd))
	if err != nil {
		return "", fmt.Errorf("locate a path in the image: %w", err)
	}
	rel, err := filepath.Rel(u.lowerDir, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("path %s resolved outside the image", target)
	}
	return path.Join("/", rel), nil
}

// mountPoint creates in the upper directory what the image lacks of p: the directories leading to
// it, then p itself as a directory or an empty file.
func (u upperWriter) mountPoint(p string, dir bool) error {
	real, missing, err := u.resolve(p)
	if err != nil || len(missing) == 0 {
		return err
	}
	if err := u.mkdirUpper(real); err != nil {
		return err
	}
	for i, c := range missing {
		full := filepath.Join(u.upperDir, real, filepath.Join(missing[:i+1]...))
		if i == len(missing)-1 && !dir {
			f, err := os.OpenFile(full, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
			if err != nil {
				return fmt.Errorf("create mount point: %w", err)
			}
			f.Close()
			break
		}
		if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create mount point %s: %w", c, err)
		}
	}
	return nil
}

// mkdirUpper creates the image directory real (which exists in the image) in the upper directory,
// each level with the mode the image gives it, so that the merged directory looks the same.
func (u upperWriter) mkdirUpper(real string) error {
	cur := "/"
	for _, c := range strings.Split(strings.Trim(real, "/"), "/") {
		if c == "" {
			continue
		}
		cur = path.Join(cur, c)
		full := filepath.Join(u.upperDir, cur)
		var st unix.Stat_t
		if err := unix.Fstatat(u.lower, "."+cur, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s in the image: %w", cur, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s in the image is not a directory", cur)
		}
		if err := os.Mkdir(full, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s in the container root: %w", cur, err)
		}
		if err := unix.Chmod(full, st.Mode&0o7777); err != nil {
			return fmt.Errorf("create %s in the container root: %w", cur, err)
		}
	}
	return nil
}

// identity writes the image's /etc/passwd and /etc/group, with the user's entries merged in, to
// the upper directory.
func (u upperWriter) identity(id *spec.Identity) error {
	for _, f := range []struct {
		name  string
		lines []string
	}{{"/etc/passwd", []string{id.Passwd}}, {"/etc/group", id.Groups}} {
		if err := u.mergeFile(f.name, f.lines, id.AddMissing); err != nil {
			return fmt.Errorf("add your entries to %s in the container: %w", f.name, err)
		}
	}
	return nil
}

func (u upperWriter) mergeFile(name string, lines []string, addOnly bool) error {
	real, missing, err := u.resolve(name)
	if err != nil {
		return err
	}
	var old []byte
	file := real
	if len(missing) == 0 {
		if old, err = os.ReadFile(filepath.Join(u.lowerDir, real)); err != nil {
			return err
		}
		if err := u.mkdirUpper(path.Dir(real)); err != nil {
			return err
		}
	} else {
		if err := u.mkdirUpper(real); err != nil {
			return err
		}
		file = path.Join(append([]string{real}, missing...)...)
		if err := os.MkdirAll(filepath.Join(u.upperDir, path.Dir(file)), 0o755); err != nil {
			return err
		}
	}
	merged := MergeEntries(string(old), lines)
	if addOnly {
		merged = AddEntries(string(old), lines)
	}
	return os.WriteFile(filepath.Join(u.upperDir, file), []byte(merged), 0o644)
}
