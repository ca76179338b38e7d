package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MountFUSE opens /dev/fuse and mounts a FUSE file system served through it at target, read-only.
// The caller must hold CAP_SYS_ADMIN (in its user namespace). It hands the returned descriptor to
// the server (squashfuse_ll) and closes its own copy: once the server's copy is the only one, the
// server dying aborts the connection, so the container sees errors (ENOTCONN) instead of hanging.
func MountFUSE(target, source string, uid, gid int) (*os.File, error) {
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w (is fuse3 installed and /dev/fuse readable and writable by you?)", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,allow_other", dev.Fd(), uid, gid)
	if err := Mount(source, target, "fuse."+source, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// Squashfuse is a running squashfuse_ll serving one mounted image.
type Squashfuse struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *slog.Logger
}

// StartSquashfuse starts squashfuse_ll serving the squashfs at offset in image over the FUSE
// connection fuse (from MountFUSE, made in the container's namespaces). The server receives both as
// inherited descriptors; libfuse takes "/dev/fd/N" as an already mounted connection. The server is
// killed if hpcctl dies (Pdeathsig).
func StartSquashfuse(binary string, image *os.File, offset int64, fuse *os.File, log *slog.Logger) (*Squashfuse, error) {
	opts := "ro"
	if offset > 0 {
		opts += ",offset=" + strconv.FormatInt(offset, 10)
	}
	cmd := exec.Command(binary, "-f", "-o", opts, "/proc/self/fd/3", "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{image, fuse}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (install squashfuse, or run with --unsquash)", binary, err)
	}
	s := &Squashfuse{cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// Done is closed when the server has exited.
func (s *Squashfuse) Done() <-chan struct{} { return s.done }

// Stop ends the server once the container is over: at once when grace is 0, otherwise after it
// had grace to leave by itself (the kernel ends the connection when the container's mount
// namespace goes away). A process the program left running in the background may still use the
// image; it sees errors from then on, as nothing may outlive hpcctl.
func (s *Squashfuse) Stop(grace time.Duration) error {
	if grace > 0 {
		select {
		case <-s.done:
		case <-time.After(grace):
		}
	}
	select {
	case <-s.done:
	default:
		s.log.Debug("stopping squashfuse_ll", "pid", s.cmd.Process.Pid)
		s.cmd.Process.Kill() //nolint:errcheck // it may just have exited
		<-s.done
	}
	var ee *exec.ExitError
	if s.err != nil && !errors.As(s.err, &ee) {
		return fmt.Errorf("squashfuse_ll: %w", s.err)
	}
	return nil
}
