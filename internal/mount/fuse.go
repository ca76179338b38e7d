package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fuseDevIocSyncInit is FUSE_DEV_IOC_SYNC_INIT, _IO(229, 3) (Linux 6.18): the kernel then holds a
// server's reads of the connection until it is mounted, and mount(2) sends FUSE_INIT and waits
// for the answer.
const fuseDevIocSyncInit = 229<<8 | 3

// OpenSyncFUSE opens /dev/fuse for a connection that its server may start serving before it is
// mounted (FUSE_DEV_IOC_SYNC_INIT): squashfuse_ll then starts while the container's root is being
// prepared instead of after the mount. The kernel mounts a connection only in the user namespace
// that opened it, so the process that mounts must open it. ok is false when the kernel lacks it
// (before 6.18) or /dev/fuse cannot be opened: the caller then uses MountFUSE.
func OpenSyncFUSE() (dev *os.File, ok bool) {
	// Opened blocking and wrapped with os.NewFile, so that Go's poller never registers it:
	// epoll_ctl polls the device, and polling a synchronous connection before its mount waits
	// for the mount.
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fuseDevIocSyncInit, 0); e != 0 {
		unix.Close(fd)
		return nil, false
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), true
}

// MountFUSEConn mounts, read-only at target, the connection dev (from OpenSyncFUSE) that a server
// already serves; it returns once the server has answered FUSE_INIT. While the caller holds dev,
// the server dying does not end the connection: whoever supervises the server must end the caller
// then. The caller must hold CAP_SYS_ADMIN (in its user namespace).
func MountFUSEConn(dev *os.File, target, source string, uid, gid int) error {
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,allow_other", dev.Fd(), uid, gid)
	return Mount(source, target, "fuse."+source, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, data)
}

// MountFUSE opens /dev/fuse and mounts a FUSE file system served through it at target, read-only.
// The caller must hold CAP_SYS_ADMIN (in its user namespace). It hands the returned descriptor to
// the server (squashfuse_ll) and closes its own copy: once the server's copy is the only one, the
// server dying aborts the connection, so the container sees errors (ENOTCONN) instead of hanging.
func MountFUSE(target, source string, uid, gid int) (*os.File, error) {
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w (is fuse3 installed and /dev/fuse readable and writable by you?)", err)
	}
	if err := MountFUSEConn(dev, target, source, uid, gid); err != nil {
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
// killed if hpcctl dies (Pdeathsig), and is deaf to the signals a scheduler sends to every
// process of a job (see startShielded): it must serve the image until the program has exited,
// and hpcctl's Stop ends it then.
func StartSquashfuse(binary string, image *os.File, offset int64, fuse *os.File, log *slog.Logger) (*Squashfuse, error) {
	opts := "ro"
	if offset > 0 {
		opts += ",offset=" + strconv.FormatInt(offset, 10)
	}
	cmd := exec.Command(binary, "-f", "-o", opts, "/proc/self/fd/3", "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{image, fuse}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := startShielded(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w (install squashfuse, or run with --unsquash)", binary, err)
	}
	s := &Squashfuse{cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// JobSignals are what batch systems send to every process of a job to end, warn or notify it
// (Slurm with proctrack/linuxproc, PBS on qdel and walltime, `kill -- -PGID`, a hung-up terminal).
// A helper that died of them would take the image away from the program in its grace period:
// libfuse ends the server on SIGTERM, SIGINT and SIGHUP, and the default action of the others is
// to terminate.
var JobSignals = []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGALRM, unix.SIGXCPU, unix.SIGPWR, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPIPE}

// startShielded starts cmd with JobSignals blocked. A blocked signal mask is inherited through
// fork and execve (Go's fork saves and restores the calling thread's mask), and libfuse never
// unblocks them (its worker threads start with every signal blocked; the main thread only waits),
// so they stay pending and harmless. Ignoring them (SIG_IGN) would also survive execve, but Go
// resets the dispositions of the signals hpcctl catches to their default in the child. SIGKILL
// still ends the server: Stop and Pdeathsig use it.
func startShielded(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	for _, sig := range JobSignals {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return fmt.Errorf("block signals: %w", err)
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) //nolint:errcheck // restores the mask it just read
	return cmd.Start()
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

// MountFUSEConnPrivate is MountFUSEConn without allow_other, for a mount other user namespaces
// use: the kernel then admits a request when the caller's uids and gids are the mounter's
// (fuse_permissible_uidgid), whatever the caller's user namespace, where allow_other on a mount
// made in a user namespace would admit only that namespace and its descendants.
func MountFUSEConnPrivate(dev *os.File, target, source string, uid, gid int) error {
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d", dev.Fd(), uid, gid)
	return Mount(source, target, "fuse."+source, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, data)
}
