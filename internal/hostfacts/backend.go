package hostfacts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Choice names a requested backend: "" (automatic), or a spec.Backend.
type Choice string

// Environment is what the backend choice depends on, probed by Probe and given explicitly in tests.
type Environment struct {
	Root bool
	// Squashfuse is the path of squashfuse_ll, "" when it is not installed.
	Squashfuse string
	// FUSEError is why /dev/fuse cannot be used, nil when it can.
	FUSEError error
}

// Probe looks at this machine. squashfuse is the squashfuse_ll the site configured, "" to look it
// up on PATH; a configured one that cannot be run counts as none.
func Probe(squashfuse string) Environment {
	e := Environment{Root: os.Geteuid() == 0}
	e.Squashfuse = squashfusePath(squashfuse)
	e.FUSEError = unix.Access("/dev/fuse", unix.R_OK|unix.W_OK)
	return e
}

func squashfusePath(configured string) string {
	if configured != "" {
		if unix.Access(configured, unix.X_OK) != nil {
			return ""
		}
		return configured
	}
	if p, err := exec.LookPath("squashfuse_ll"); err == nil {
		return p
	}
	// cron, `env -i` and some schedulers' prologs start hpcctl without PATH (issue 15): look in
	// the standard directories, where a package installs it.
	for _, d := range standardDirs {
		if p := filepath.Join(d, "squashfuse_ll"); unix.Access(p, unix.X_OK) == nil {
			return p
		}
	}
	return ""
}

// standardDirs are where distributions install programs, searched when PATH finds nothing.
var standardDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// ErrNoBackend means the image cannot be mounted here; its text says what to install or enable.
var ErrNoBackend = errors.New("cannot mount the image")

// ChooseBackend picks how to mount a squashfs image: the kernel on a loop device as root,
// squashfuse_ll in a user namespace as a plain user. want overrides the choice.
func ChooseBackend(want Choice, e Environment) (spec.Backend, error) {
	switch spec.Backend(want) {
	case "":
		if e.Root {
			return spec.BackendLoop, nil
		}
		return squashfuse(e)
	case spec.BackendLoop:
		if !e.Root {
			return "", fmt.Errorf("%w: the loop backend needs root; use the squashfuse backend", ErrNoBackend)
		}
		return spec.BackendLoop, nil
	case spec.BackendSquashfuse:
		// Root runs without a user namespace, where hpcctl's FUSE mount works the same way.
		return squashfuse(e)
	}
	return "", fmt.Errorf("unknown mount backend %q: want loop or squashfuse", want)
}

func squashfuse(e Environment) (spec.Backend, error) {
	if e.Squashfuse == "" {
		return "", fmt.Errorf("%w: squashfuse_ll is not installed (install the squashfuse package), or run with --unsquash to extract the image to a temporary directory", ErrNoBackend)
	}
	if e.FUSEError != nil {
		return "", fmt.Errorf("%w: /dev/fuse: %v (install fuse3 and make /dev/fuse mode 0666), or run with --unsquash to extract the image to a temporary directory", ErrNoBackend, e.FUSEError)
	}
	return spec.BackendSquashfuse, nil
}
