package starter

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// maxConfig bounds the configuration file, as hpcctl does.
const maxConfig = 1 << 20

// siteAllows returns the site's configuration, the only one the starter knows (never a --config
// or $HPCCTL_CONFIG: it reads no flags and has no environment), if it lets users use the starter.
func siteAllows() (*config.Config, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("hpcctl-starter is not setuid root: install it with make install-suid, or run hpcctl --userns")
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("find the starter: %w", err)
	}
	conf, err := ReadSiteConfig(ConfigPath(exe))
	if err == nil && !conf.AllowSetuid {
		err = fmt.Errorf("not allowed by %s (allow_setuid is false): run hpcctl --userns", conf.Path)
	}
	return conf, err
}

// ConfigPath is the configuration of a starter installed at exe: the first of rules.ConfigPaths
// that exists, else /etc/hpcctl/hpcctl.conf.
func ConfigPath(exe string) string {
	paths := rules.ConfigPaths(exe)
	for _, p := range paths[:len(paths)-1] {
		if _, err := os.Lstat(p); err == nil {
			return p
		}
	}
	return config.DefaultPath
}

// ReadSiteConfig reads the root-owned configuration at path. What could go wrong: a file a user
// could write, or replace through a directory above it, would let them turn the policy off; so
// the file, opened without following a link, must be root's and writable by no one else, and so
// must every directory above it (CheckRootFile); it is read from the descriptor checked.
func ReadSiteConfig(path string) (*config.Config, error) {
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
// directory above it, and no one else can write them (sticky root-owned directories, like /tmp,
// are accepted: there nobody but root can rename root's entries).
func CheckRootFile(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	if err := rules.RootFile(path, &st); err != nil {
		return err
	}
	// The file again by name, and every directory above it.
	if err := SafePath(rules.Owners{0: true}, path, -1); err != nil {
		return fmt.Errorf("configuration %s: %w: it and every directory above it must be root's and writable by no one else: the setuid starter is off", path, err)
	}
	return nil
}

// SafePath reports why user could change the file at p or any directory above it, nil when
// they cannot (rules.SafeFile, rules.SafeDir). p must be a real path (no symbolic links): each
// step is an lstat. What could go wrong: a name can change after it is checked, but not the
// names in directories that user cannot write, which is what this checks from p up to /.
func SafePath(o rules.Owners, p string, user int) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	if err := o.SafeFile(p, &st, user); err != nil {
		return err
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if err := unix.Lstat(d, &st); err != nil {
			return err
		}
		if err := o.SafeDir(d, &st, user); err != nil || d == "/" {
			return err
		}
	}
}
