package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/mount"
)

// HolderArg is the hidden first argument that routes a re-executed hpcctl to HolderMain.
const HolderArg = "__hpcctl_session__"

// Descriptors the launcher passes to the holder.
const (
	imageFD  = 3
	listenFD = 4
	lockFD   = 5
	readyFD  = 6
	// parentFD is a pidfd of the launch's parent process (or /dev/null when the kernel has none).
	parentFD   = 7
	mountPoint = "/tmp/image"
	// pollEvery is how often the holder checks its image and idle time.
	pollEvery = 500 * time.Millisecond
)

// HolderMain is the session holder: it mounts the image with FUSE in its own user and mount
// namespaces, served by its own goroutines (internal/sqfuse) or by squashfuse_ll, and hands a
// detached copy of the mount to each launch that connects, until it has been idle for its
// timeout, its image changed, or its server ended. It never starts a program: containers stay
// the children of their own launches (and in their cgroups).
func HolderMain(argv []string, serve InProcessServer) int {
	// Inherited without close-on-exec; squashfuse_ll must get none of them (the ready pipe would
	// stay open, and the socket and lock would outlive the holder).
	for fd := imageFD; fd <= parentFD; fd++ {
		unix.CloseOnExec(fd)
	}
	closeInherited()
	ready := os.NewFile(readyFD, "ready")
	a, err := decodeHolderArgs(argv)
	var h *holder
	if err == nil {
		h, err = mountImage(a, serve)
	}
	if err != nil {
		ready.WriteString(err.Error()) //nolint:errcheck // the launcher reports a silent pipe too
		return 1
	}
	ready.WriteString("ok") //nolint:errcheck // see above
	ready.Close()
	h.serve()
	return 0
}

// closeInherited closes the descriptors hpcctl inherited from whatever started it without
// close-on-exec (Go's exec passes them on): a holder outlives its launch, and a pipe it kept
// would keep a caller's reader waiting for the end of output. Descriptors the Go runtime opened
// are close-on-exec and stay.
func closeInherited() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= parentFD {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// fuseServer is the server of the holder's FUSE connection: squashfuse_ll, or goroutines of the
// holder itself (which end with it).
type fuseServer interface {
	// Done is closed when the server has ended: the connection is gone.
	Done() <-chan struct{}
	// Stop ends the server as the holder ends.
	Stop()
	// Counts is what the server has served ("" when it cannot tell).
	Counts() string
}

type squashfuseServer struct{ *mount.Squashfuse }

func (s squashfuseServer) Stop()          { s.Squashfuse.Stop(0) } //nolint:errcheck // ending anyway
func (s squashfuseServer) Counts() string { return "" }

type holder struct {
	a    holderArgs
	fuse fuseServer
	ln   *net.UnixListener
	lock *os.File
	// imageDir is the image's directory, opened before the holder's tmpfs could cover it (an
	// image under /tmp): the holder watches the image's name there. It is on the image's own file
	// system, so it pins nothing the image does not.
	imageDir int
	// sockDir is the session directory, for the same reason (/tmp/hpcctl-UID).
	sockDir int
	// sockIno is the socket file's inode when the holder started (the launcher bound it under the
	// session lock just before): a file there with another inode is a newer holder's.
	sockIno uint64
	lockIno uint64

	mu      sync.Mutex
	leases  int
	idleAt  time.Time
	retired bool
}

// mountImage makes the holder's private mount of the image. The FUSE mount is made without
// allow_other: a FUSE mount with allow_other that was made in a user namespace serves only that
// namespace and its descendants (fuse_allow_current_process), while without it the kernel admits
// any process whose uids and gids are the mounter's (fuse_permissible_uidgid), whatever its user
// namespace, which is what the launches' containers are.
func mountImage(a holderArgs, serve InProcessServer) (*holder, error) {
	// Job signals (a hang-up, Slurm's SIGTERM to every process of a job) must not end a holder
	// other launches use; it ends by its idle timeout or SIGKILL.
	sigs := make([]os.Signal, 0, len(mount.JobSignals))
	for _, s := range mount.JobSignals {
		sigs = append(sigs, s)
	}
	signal.Ignore(sigs...)
	dir, err := unix.Open(filepath.Dir(a.Image), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image directory: %w", err)
	}
	if err = mount.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	img := os.NewFile(imageFD, a.Image)
	if a.Server.Kind != config.FUSEServerHpcctl {
		// squashfuse_ll has its own copy; the in-process server reads this one for its life.
		defer img.Close()
	}
	sockDir, err := unix.Open(filepath.Dir(a.Sock), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("session directory: %w", err)
	}
	var fuse fuseServer
	if a.Server.Kind == config.FUSEServerHpcctl {
		fuse, err = serveInProcess(a, img, serve)
	} else {
		fuse, err = serveFUSE(a, img)
	}
	if err != nil {
		return nil, err
	}
	h := &holder{a: a, fuse: fuse, lock: os.NewFile(lockFD, "lock"), idleAt: time.Now(), imageDir: dir, sockDir: sockDir}
	var st unix.Stat_t
	if unix.Fstatat(sockDir, filepath.Base(a.Sock), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		h.sockIno = st.Ino
	}
	if unix.Fstat(lockFD, &st) == nil {
		h.lockIno = st.Ino
	}
	l, err := net.FileListener(os.NewFile(listenFD, "listener"))
	if err != nil {
		fuse.Stop()
		return nil, fmt.Errorf("session socket: %w", err)
	}
	h.ln = l.(*net.UnixListener)
	return h, nil
}

// serveFUSE starts squashfuse_ll on a synchronous FUSE connection and mounts it, as the
// container's setup stage does (mount.OpenSyncFUSE), or mounts first when the kernel lacks it.
func serveFUSE(a holderArgs, img *os.File) (fuseServer, error) {
	log := slog.New(slog.DiscardHandler)
	if dev, ok := mount.OpenSyncFUSE(); ok {
		// Started before the tmpfs covers /tmp, so that a squashfuse_ll there is still found.
		fuse, err := mount.StartSquashfuse(a.Server.Squashfuse, img, a.Offset, dev, log)
		if err == nil {
			err = mountServed(dev, fuse.Done())
		}
		// The server's copy must be the last, so that its death ends the connection (ENOTCONN
		// in every container, never a hang).
		dev.Close()
		if err != nil {
			if fuse != nil {
				fuse.Stop(0) //nolint:errcheck // failing anyway
			}
			return nil, err
		}
		return squashfuseServer{fuse}, nil
	}
	dev, err := mountFUSE()
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	fuse, err := mount.StartSquashfuse(a.Server.Squashfuse, img, a.Offset, dev, log)
	if err != nil {
		return nil, err
	}
	return squashfuseServer{fuse}, nil
}

// mountServed mounts the synchronous FUSE connection dev, whose server already reads it, at the
// mount point. Until the mount is made our copy of the connection keeps it alive, so a server that
// failed before answering FUSE_INIT (failed closes) would leave mount(2) waiting for ever: the
// holder ends then, and the launch sees its ready pipe close and mounts the image itself.
func mountServed(dev *os.File, failed <-chan struct{}) error {
	if err := mountPointTmpfs(); err != nil {
		return err
	}
	mounted := make(chan struct{})
	go func() {
		select {
		case <-failed:
			os.Exit(1)
		case <-mounted:
		}
	}()
	err := mount.MountFUSEConnPrivate(dev, mountPoint, "squashfuse", os.Getuid(), os.Getgid())
	close(mounted)
	if err != nil {
		return fmt.Errorf("mount the image with FUSE: %w", err)
	}
	return nil
}

// mountFUSE opens /dev/fuse and mounts the connection at the mount point, for a kernel without
// FUSE_DEV_IOC_SYNC_INIT: mount(2) then queues FUSE_INIT without waiting, and the server that
// gets the descriptor next answers it.
func mountFUSE() (*os.File, error) {
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	err = mountPointTmpfs()
	if err == nil {
		err = mount.MountFUSEConnPrivate(dev, mountPoint, "squashfuse", os.Getuid(), os.Getgid())
		if err != nil {
			err = fmt.Errorf("mount the image with FUSE: %w", err)
		}
	}
	if err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// mountPointTmpfs mounts a tmpfs of the holder's own over /tmp, in its own mount namespace, and
// makes the mount point there: nothing on the host is touched, and the holder's mount sits on no
// user directory.
func mountPointTmpfs() error {
	if err := mount.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return err
	}
	if err := os.Mkdir(mountPoint, 0o700); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	return nil
}

// serve hands out mounts until the holder ends, then stops squashfuse_ll.
func (h *holder) serve() {
	go h.accept()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-h.fuse.Done():
			// Containers see ENOTCONN; the next launch must start a fresh holder.
			h.retire()
			return
		case <-t.C:
			if !h.a.ID.sameFile(h.imageDir, filepath.Base(h.a.Image)) {
				h.retire()
			}
			if h.finished() {
				h.fuse.Stop()
				return
			}
		}
	}
}

// finished reports whether the holder may end: retired with no container left, or idle for
// its timeout. It decides while it holds the session lock, which every launch holds from
// connecting until it has its mount: no launch is then half-way through joining, and the lease
// count is exact.
func (h *holder) finished() bool {
	h.mu.Lock()
	idle := h.leases == 0 && (h.retired || time.Since(h.idleAt) >= h.a.Idle || parentGone())
	h.mu.Unlock()
	if !idle || unix.Flock(int(h.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false
	}
	defer unix.Flock(int(h.lock.Fd()), unix.LOCK_UN) //nolint:errcheck // the holder exits next anyway
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.leases > 0 {
		return false
	}
	h.retireLocked()
	h.removeFile(filepath.Base(h.a.Sock[:len(h.a.Sock)-len(".sock")]+".lock"), h.lockIno)
	return true
}

// parentGone reports whether the process that started the first launch has exited: a pidfd
// polls readable then.
func parentGone() bool {
	fds := []unix.PollFd{{Fd: parentFD, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1 && fds[0].Revents&unix.POLLIN != 0 && !isDevNull(parentFD)
}

// isDevNull reports whether fd is /dev/null (the launcher's stand-in for a missing pidfd), which
// always polls readable.
func isDevNull(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR
}

// retire stops taking launches: the socket goes, so that the next launch starts a new holder.
// The session lock is taken before the holder's own: a launch holds it while it waits for lend.
func (h *holder) retire() {
	if err := flock(h.lock, unix.LOCK_EX); err == nil {
		defer unix.Flock(int(h.lock.Fd()), unix.LOCK_UN) //nolint:errcheck // released anyway at exit
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.retireLocked()
}

func (h *holder) retireLocked() {
	if h.retired {
		return
	}
	h.retired = true
	h.removeFile(filepath.Base(h.a.Sock), h.sockIno)
	h.ln.Close()
}

// removeFile removes name from the session directory if it is still the file the holder started
// with (inode ino): a launch that found this holder dead may have made new ones.
func (h *holder) removeFile(name string, ino uint64) {
	var st unix.Stat_t
	if err := unix.Fstatat(h.sockDir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && ino != 0 && st.Ino == ino {
		unix.Unlinkat(h.sockDir, name, 0) //nolint:errcheck // best effort: a stale file is replaced
	}
}

// readRequest reads the one-byte request a client sends first; a client that sends nothing for
// a few seconds is dropped, so that it cannot pin the holder.
func readRequest(c *net.UnixConn) (byte, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a deadline on a fresh conn
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return 0, err
	}
	c.SetReadDeadline(time.Time{}) //nolint:errcheck // cleared for the lease's long read
	return b[0], nil
}

func (h *holder) accept() {
	for {
		c, err := h.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		go h.lend(c)
	}
}

// answerInfo tells an asker (`hpcctl session list`) what the holder serves; closing the
// connection, which lend does, ends the answer.
func (h *holder) answerInfo(c *net.UnixConn) {
	h.mu.Lock()
	a := infoAnswer{Image: h.a.Image, Containers: h.leases, PID: os.Getpid(), Idle: h.a.Idle, Requests: h.fuse.Counts()}
	h.mu.Unlock()
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	c.Write(append([]byte{reqInfo}, b...)) //nolint:errcheck // a failed write: the asker sees a short answer
}

// lend sends one launch a detached copy of the mount (open_tree with OPEN_TREE_CLONE: a new
// mount of the same superblock in an anonymous mount namespace, which the launch's setup stage
// moves into its own with move_mount) and counts the launch until it closes its end.
func (h *holder) lend(c *net.UnixConn) {
	defer c.Close()
	if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
		c.Write([]byte("Enot your session")) //nolint:errcheck // refused anyway
		return
	}
	req, err := readRequest(c)
	if err != nil {
		return
	}
	switch req {
	case reqInfo:
		h.answerInfo(c)
		return
	case reqStop:
		h.retire()
		c.Write([]byte("S")) //nolint:errcheck // the asker sees a short answer
		return
	case reqJoin:
	default:
		c.Write([]byte("Eunknown request")) //nolint:errcheck // refused anyway
		return
	}
	h.mu.Lock()
	if h.retired {
		h.mu.Unlock()
		c.Write([]byte("Esession ending")) //nolint:errcheck // refused anyway
		return
	}
	h.leases++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.leases--
		h.idleAt = time.Now()
		h.mu.Unlock()
	}()
	fd, err := unix.OpenTree(unix.AT_FDCWD, mountPoint, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		c.Write([]byte("Eopen_tree: " + err.Error())) //nolint:errcheck // refused anyway
		return
	}
	_, _, err = c.WriteMsgUnix([]byte("M"), unix.UnixRights(fd), nil)
	unix.Close(fd)
	if err != nil {
		return
	}
	// The launch keeps its end open while its container runs.
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}
