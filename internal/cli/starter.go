package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/starter"
)

// StarterName is the setuid starter's file name, in PREFIX/libexec/hpcctl or beside hpcctl.
const StarterName = "hpcctl-starter"

// starterChoice says whether a plain user's launch goes through the setuid starter: path is the
// starter ("" for the user-namespace path) and why says why, for `hpcctl doctor` and errors.
type starterChoice struct {
	path, why string
	// refused: the starter is installed and allowed, but not for this image.
	refused bool
	// owners is the site's kernel_mount_owners (not a --config file's: the starter reads the site's).
	owners []string
}

// starterHint adds to a failed start in a user namespace why the starter did not take the image,
// where that is what the user can change.
func starterHint(o *launchOptions, err error) error {
	if err == nil || !o.starter.refused || !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOSPC) {
		return err
	}
	return fmt.Errorf("%w; %s", err, o.starter.why)
}

// chooseStarter decides, before the image is known, whether this launch may use the starter:
// not as root, not with --userns, --backend squashfuse or --unsquash; only an installed starter
// that root owns and that is setuid, allowed by the site's root-owned configuration. The
// starter checks all of it again: this only picks the path that will work.
func chooseStarter(o *launchOptions, conf *config.Config) starterChoice {
	switch {
	case os.Getuid() == 0:
		return starterChoice{why: "root mounts images with the kernel itself"}
	case o != nil && o.userns:
		return starterChoice{why: "--userns asks for the user-namespace path"}
	case o != nil && o.backend == string(spec.BackendSquashfuse):
		return starterChoice{why: "--backend squashfuse asks for the user-namespace path"}
	case o != nil && o.unsquash:
		return starterChoice{why: "--unsquash extracts the image instead"}
	case o != nil && o.wantsImages():
		return starterChoice{why: "image binds and image overlays are served by squashfuse_ll in a user namespace"}
	}
	path, err := findStarter()
	if err != nil {
		return starterChoice{why: err.Error()}
	}
	site := starter.ConfigPath(path)
	if conf == nil || conf.Path != site {
		if conf, err = starter.ReadSiteConfig(site); err != nil {
			return starterChoice{why: err.Error()}
		}
	} else if err := checkSiteConfig(site); err != nil {
		return starterChoice{why: err.Error()}
	}
	if !conf.AllowSetuid {
		return starterChoice{why: fmt.Sprintf("%s does not set allow_setuid = true", site)}
	}
	return starterChoice{path: path, why: fmt.Sprintf("%s is setuid root and allowed by %s", path, site), owners: conf.KernelMountOwners}
}

// findStarter returns the installed starter, if it is root's and setuid.
func findStarter() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(self)
	for _, p := range []string{filepath.Join(dir, "..", "libexec", "hpcctl", StarterName), filepath.Join(dir, StarterName)} {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil {
			continue
		}
		p = filepath.Clean(p)
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&unix.S_ISUID == 0 {
			return "", fmt.Errorf("%s is not setuid root (install it with make install-suid)", p)
		}
		return p, nil
	}
	return "", errors.New("no " + StarterName + " is installed with hpcctl (make install-suid installs it)")
}

func checkSiteConfig(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("site configuration: %w", err)
	}
	defer f.Close()
	return starter.CheckRootFile(f, path)
}

// starterImage decides, once the image is open, whether the starter mounts it: only an image
// the user cannot change (starter.TrustedImage); any other goes through squashfuse_ll. It
// returns why not, "" when the starter takes it.
func starterImage(c starterChoice, f *os.File) string {
	if err := starter.TrustedImage(starter.OwnersOf(c.owners), f, os.Getuid()); err != nil {
		return fmt.Sprintf("the setuid starter mounts only images you cannot change (%v)", err)
	}
	return ""
}

// starterSpec turns the Spec of a plain user's launch into the starter's: no user namespace (the
// starter is root in the initial one and drops to the user), no_new_privs on.
func starterSpec(s *spec.Spec) {
	s.Namespaces.User = false
	s.UIDMap, s.GIDMap = nil, nil
	s.NoNewPrivileges = true
}

// starterShape is the Shape of a launch through the starter.
func starterShape(sh spec.Shape) spec.Shape {
	sh.Namespaces.User = false
	sh.UIDMap, sh.GIDMap = nil, nil
	return sh
}

func newDoctorCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Say how a launch will mount images on this host, and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conf, err := loadConfig("")
			if err != nil {
				return err
			}
			c := chooseStarter(nil, conf)
			path := "user namespace + squashfuse_ll"
			if os.Getuid() == 0 {
				path = "kernel squashfs on a loop device (root)"
			} else if c.path != "" {
				path = "setuid starter: kernel squashfs on a shared loop device (images you cannot change; others: user namespace + squashfuse_ll)"
			}
			_, err = fmt.Fprintf(g.Stdout, "launch path: %s\nbecause: %s\n", path, c.why)
			return err
		},
	}
}
