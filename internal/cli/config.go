package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// configEnv names another configuration file, as --config does.
const configEnv = "HPCCTL_CONFIG"

// loadConfig reads the site's configuration once per launch: --config or $HPCCTL_CONFIG, else the
// file beside the installation or /etc/hpcctl/hpcctl.conf (defaults when there is none).
func loadConfig(flag string) (*config.Config, error) {
	path := flag
	if path == "" {
		path = os.Getenv(configEnv)
	}
	if path == "" {
		return readConfig(defaultConfigPath(), true)
	}
	// Running setuid, the site's file is the only one: another would let a user change the policy
	// that the privileged starter enforces.
	if setuid() {
		return nil, fmt.Errorf("--config and $%s are not allowed when hpcctl runs setuid; the site's settings are in %s", configEnv, defaultConfigPath())
	}
	return readConfig(path, false)
}

// readConfig reads and parses the configuration file at path, non-blocking and at most
// maxSmallFile bytes (a --config /dev/zero or a FIFO must not hang or exhaust memory). A missing
// file gives the defaults when missingOK (the default location).
func readConfig(path string, missingOK bool) (*config.Config, error) {
	b, err := readUserFile(path, "configuration file", maxSmallFile)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return config.Defaults(), nil
	}
	if err != nil {
		return nil, err
	}
	return config.Parse(path, b)
}

// defaultConfigPath is PREFIX/etc/hpcctl/hpcctl.conf when hpcctl is installed as PREFIX/bin/hpcctl
// under a prefix of its own (/opt/hpcctl, a module tree) and that file exists, else
// /etc/hpcctl/hpcctl.conf.
func defaultConfigPath() string {
	exe, err := os.Executable()
	if err != nil {
		return config.DefaultPath
	}
	bin := filepath.Dir(exe)
	prefix := filepath.Dir(bin)
	if filepath.Base(bin) != "bin" || prefix == "/" || prefix == "/usr" {
		return config.DefaultPath
	}
	p := filepath.Join(prefix, "etc", "hpcctl", "hpcctl.conf")
	if _, err := os.Stat(p); err != nil {
		return config.DefaultPath
	}
	// Running setuid, a file found beside the binary counts only when root owns it and every
	// directory above it and nobody else can write them: otherwise a user who hardlinked the
	// binary into a tree of their own would choose the configuration.
	if setuid() && !rootOnly(p) {
		return config.DefaultPath
	}
	return p
}

func setuid() bool { return os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() }

// rootOnly reports whether p and each directory above it are owned by root and writable by no
// one else.
func rootOnly(p string) bool {
	for ; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil || st.Uid != 0 || st.Mode&0o022 != 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// checkImageLimits applies limit_container_paths and limit_container_owners to the image.
func checkImageLimits(ctx context.Context, c *config.Config, image string) error {
	if len(c.LimitContainerPaths) == 0 && len(c.LimitContainerOwners) == 0 {
		return nil
	}
	real, err := filepath.EvalSymlinks(image)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if len(c.LimitContainerPaths) > 0 && !rules.InPaths(real, c.LimitContainerPaths) {
		return fmt.Errorf("image %s is outside the directories this site runs images from (limit_container_paths in %s: %s)", real, c.Path, strings.Join(c.LimitContainerPaths, ", "))
	}
	if len(c.LimitContainerOwners) == 0 {
		return nil
	}
	st, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	uid := strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid))
	name := ""
	if f := hostfacts.Entry(ctx, "passwd", uid); len(f) > 0 {
		name = f[0]
	}
	if !slices.Contains(c.LimitContainerOwners, uid) && (name == "" || !slices.Contains(c.LimitContainerOwners, name)) {
		return fmt.Errorf("image %s is owned by %s, not by a user this site runs images of (limit_container_owners in %s: %s)", real, ownerName(name, uid), c.Path, strings.Join(c.LimitContainerOwners, ", "))
	}
	return nil
}

func ownerName(name, uid string) string {
	if name == "" {
		return "UID " + uid
	}
	return name
}
