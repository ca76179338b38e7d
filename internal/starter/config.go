package starter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
)

// maxConfig bounds the configuration file, as hpcctl does.
const maxConfig = 1 << 20

// Prefix is the installation prefix of the starter at exe: PREFIX/libexec/hpcctl/hpcctl-starter
// or PREFIX/bin/hpcctl-starter; "" for any other place.
func Prefix(exe string) string {
	dir := filepath.Dir(exe)
	switch {
	case filepath.Base(dir) == "hpcctl" && filepath.Base(filepath.Dir(dir)) == "libexec":
		return filepath.Dir(filepath.Dir(dir))
	case filepath.Base(dir) == "bin":
		return filepath.Dir(dir)
	}
	return ""
}

// ConfigPath is the configuration of a starter installed at exe: PREFIX/etc/hpcctl/hpcctl.conf
// when it exists under a prefix of its own, else /etc/hpcctl/hpcctl.conf (as hpcctl's).
func ConfigPath(exe string) string {
	p := Prefix(exe)
	if p == "" || p == "/" || p == "/usr" {
		return config.DefaultPath
	}
	c := filepath.Join(p, "etc", "hpcctl", "hpcctl.conf")
	if _, err := os.Lstat(c); err != nil {
		return config.DefaultPath
	}
	return c
}

// loadConfig reads the site's configuration, the only one the starter knows: never a --config or
// $HPCCTL_CONFIG (it reads no flags and has no environment). What could go wrong: a file a user
// could write, or replace through a directory above it, would let them turn the policy off; so
// the file, opened without following a link, must be root's and writable by no one else, and so
// must every directory above it (sticky root-owned ones, like /tmp, are accepted: there nobody
// but root can rename root's entries).
func loadConfig() (*config.Config, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("find the starter: %w", err)
	}
	path := ConfigPath(exe)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no %s: the site has not allowed it (allow_setuid = true there); run hpcctl --userns", path)
	}
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	defer f.Close()
	if err = CheckRootFile(f, path); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil || len(b) > maxConfig {
		return nil, fmt.Errorf("configuration %s: unreadable or larger than 1 MiB", path)
	}
	return config.Parse(path, b)
}

// CheckRootFile refuses the configuration file open as f (at path) unless root owns it and every
// directory above it, and no one else can write them.
func CheckRootFile(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("configuration %s must be a regular file owned by root and writable by no one else (it is owned by UID %d, mode %#o): the setuid starter is off", path, st.Uid, st.Mode&0o7777)
	}
	// The file again by name, and every directory above it (sticky root-owned ones accepted).
	if err := (Owners{0: true}).SafePath(path, -1); err != nil {
		return fmt.Errorf("configuration %s: %w: it and every directory above it must be root's and writable by no one else: the setuid starter is off", path, err)
	}
	return nil
}

// checkLimits applies limit_container_paths and limit_container_owners to the open image, by its
// real path and owner now (hpcctl's own check could have been skipped).
func checkLimits(c *config.Config, img *os.File) error {
	if len(c.LimitContainerPaths) == 0 && len(c.LimitContainerOwners) == 0 {
		return nil
	}
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", img.Fd()))
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if len(c.LimitContainerPaths) > 0 && !slices.ContainsFunc(c.LimitContainerPaths, func(dir string) bool {
		d := filepath.Clean(dir)
		return real == d || strings.HasPrefix(real, strings.TrimSuffix(d, "/")+"/")
	}) {
		return fmt.Errorf("image %s is outside the directories this site runs images from (limit_container_paths in %s)", real, c.Path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(img.Fd()), &st); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	lim := OwnersOf(c.LimitContainerOwners)
	if !slices.Contains(c.LimitContainerOwners, "0") && !slices.Contains(c.LimitContainerOwners, "root") {
		delete(lim, 0) // OwnersOf always trusts root; the limit names its owners
	}
	if len(c.LimitContainerOwners) > 0 && !lim[st.Uid] {
		return fmt.Errorf("image %s is owned by UID %d, not by a user this site runs images of (limit_container_owners in %s)", real, st.Uid, c.Path)
	}
	return nil
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
	name, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", img.Fd()))
	if err != nil {
		return err
	}
	candidates := []string{filepath.Join(filepath.Dir(exe), "hpcctl-image")}
	if p := Prefix(exe); p != "" {
		candidates = append(candidates, filepath.Join(p, "bin", "hpcctl-image"))
	}
	var companion string
	for _, p := range candidates {
		if (Owners{0: true}).SafePath(p, -1) == nil {
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
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		if msg = strings.TrimPrefix(msg, "hpcctl: "); msg == "" {
			msg = "image " + name + ": refused by the signature policy (" + err.Error() + ")"
		}
		return errors.New(msg)
	}
	return nil
}
