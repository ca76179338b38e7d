package child

import (
	"errors"
	"os"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Privileged is the setuid starter's part in the setup stage (internal/starter). Under it the
// stage runs as root in the initial user namespace, with the user's file-system identity on its
// locked thread (setfsuid), and these hooks do the steps that need more or less than that.
type Privileged interface {
	// MountImage mounts the image's squashfs partition read-only at target, on a loop device
	// shared with the other containers of the same image.
	MountImage(s *spec.Spec, img *os.File, target string) error
	// WithSetupCaps runs f with CAP_DAC_OVERRIDE and CAP_MKNOD, as the user namespace's ambient
	// capabilities give them there: writing the private staging layer (directories of the
	// image's modes) and mounting the overlay (its mode-0 work directory, whiteouts).
	WithSetupCaps(f func() error) error
	// SecureBind makes the bind mount at the destination open as fd nosuid and, unless its
	// source open as src (-1: in the image) is a host device, nodev: under root the kernel would
	// keep the source's flags.
	SecureBind(fd, src int) error
	// CheckReadable refuses a directory the user cannot read and search (the overlay's read-only
	// layers): overlayfs reads them with its mounter's credentials.
	CheckReadable(fd int, name string) error
	// Drop drops every privilege for good, on every thread.
	Drop() error
}

// privileged is set once, by RunPrivileged, before anything is mounted; nil in hpcctl's own
// stage. It is a mode of the whole process (the starter), not configuration.
var privileged Privileged

// ErrAbandoned is hpcctl closing the Spec pipe without a Spec (it started the stage early and
// then did not launch).
var ErrAbandoned = errAbandoned

// ReadSetup reads the Spec and receives the image, as the stage's first step. It receives the
// image even when the Spec is bad: closing the socket with the image unread would reset it, and
// hpcctl would read "connection reset" instead of the reason.
func ReadSetup() (*spec.Spec, *os.File, error) {
	s, err := readSpec()
	if errors.Is(err, errAbandoned) {
		return nil, nil, err
	}
	// hpcctl sends no session mount to the starter (sessions are for user-namespace launches).
	img, session, ierr := receiveImage()
	if session != nil {
		session.Close()
	}
	if err == nil {
		err = ierr
	}
	return s, img, err
}

// RunPrivileged runs the rest of the setup stage under the starter and returns the exit status
// (it returns only on failure, or as PID 1 with the program's status).
func RunPrivileged(s *spec.Spec, img *os.File, p Privileged) int {
	privileged = p
	return Finish(run(s, img, nil, nil))
}

// Finish reports err to hpcctl and returns the stage's exit status.
func Finish(err error) int {
	var ie initExit
	if errors.As(err, &ie) {
		return ie.status
	}
	report(err)
	return 1
}

// withSetupCaps runs f, with the starter's setup capabilities under the starter.
func withSetupCaps(f func() error) error {
	if privileged != nil {
		return privileged.WithSetupCaps(f)
	}
	return f()
}
