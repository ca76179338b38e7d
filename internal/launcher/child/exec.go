package child

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// enterCwd changes into the Spec's working directory, or into its fallback with a warning, as
// Apptainer does when the current directory cannot be kept.
func enterCwd(s *spec.Spec) error {
	err := unix.Chdir(s.Cwd)
	if err == nil {
		return nil
	}
	if s.CwdFallback == "" {
		return fmt.Errorf("working directory %s in the container: %w", s.Cwd, err)
	}
	fmt.Fprintf(os.Stderr, "hpcctl: warning: the current directory %s is not available in the container (%v); running in %s\n", s.Cwd, errnoText(err), s.CwdFallback)
	if err := unix.Chdir(s.CwdFallback); err != nil {
		if err2 := unix.Chdir("/"); err2 != nil {
			return fmt.Errorf("working directory %s in the container: %w", s.CwdFallback, err)
		}
	}
	return nil
}

func errnoText(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}

var errNotFound = errors.New("command not found in the container")

// lookPath finds name in the container's PATH (from env, not hpcctl's own), like execvp.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExec(name)
	}
	p := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p = v
		}
	}
	var firstErr error
	for _, dir := range strings.Split(p, ":") {
		if dir == "" {
			dir = "."
		}
		full := path.Join(dir, name)
		err := checkExec(full)
		if err == nil {
			return full, nil
		}
		if firstErr == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%s: %w (PATH=%s)", name, errNotFound, p)
}

func checkExec(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("%s in the container: %w", p, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s in the container is a directory", p)
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return fmt.Errorf("%s in the container: %w", p, err)
	}
	return nil
}

// dropPrivileges clears every capability (the ambient ones the launcher raised for setup included),
// unless the Spec keeps them for root. Clearing is computed from nothing, never from "all", because
// root here lacks some capabilities (CAP_SYS_RESOURCE) and asking for the full set fails.
func dropPrivileges(s *spec.Spec) error {
	if privileged != nil {
		return privileged.Drop()
	}
	if s.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if s.KeepCapabilities {
		// Root keeps its capabilities through its own ID (real root, or root of a --fakeroot
		// namespace at execve); the ambient ones a fakeroot setup process was started with
		// would also survive a change to another user inside.
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
			return fmt.Errorf("clear ambient capabilities: %w", err)
		}
		return dropSome(s.DropCapabilities)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	return nil
}

// dropSome removes the given capabilities from root's sets: the bounding set first (that needs
// CAP_SETPCAP, still held), so that exec cannot give them back, then the ambient, inheritable,
// permitted and effective sets.
func dropSome(caps []uint) error {
	if len(caps) == 0 {
		return nil
	}
	for _, c := range caps {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
		// EINVAL: the kernel does not know the capability, or the ambient set lacks it.
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_LOWER, uintptr(c), 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop ambient capability %d: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	for _, c := range caps {
		if c >= 64 {
			continue
		}
		bit := uint32(1) << (c % 32)
		d := &data[c/32]
		d.Effective &^= bit
		d.Permitted &^= bit
		d.Inheritable &^= bit
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}
