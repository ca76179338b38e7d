package session

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
)

// readyTimeout bounds the wait for a new holder's mount; squashfuse_ll answers FUSE_INIT in
// milliseconds, so a holder that takes this long is stuck.
const readyTimeout = 20 * time.Second

// Acquire returns a lease on the session for the image open as img (path is its name, which the
// holder watches for replacement), starting a holder when none serves it. The per-session lock
// file makes two racing launches end with one holder.
func Acquire(img *os.File, path string, offset int64, o Options) (*Lease, error) {
	dir := o.Dir
	var err error
	if dir == "" {
		if dir, err = RendezvousDir(); err != nil {
			return nil, err
		}
	}
	if path, err = filepath.Abs(path); err != nil {
		return nil, fmt.Errorf("image path: %w", err)
	}
	id, err := IdentityOf(img, offset)
	if err != nil {
		return nil, err
	}
	srv := o.server()
	if err = srv.check(); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, Key(os.Getuid(), id, offset, srv.key(), ownCgroup()))
	lock, err := lockFile(base + ".lock")
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if l, err := join(base + ".sock"); err == nil {
		l.Joined = true
		return l, nil
	}
	// No holder answers (none yet, or it died): the socket file is stale, and the lock keeps
	// another launch from starting a second holder meanwhile.
	os.Remove(base + ".sock")
	a := holderArgs{Image: path, Server: srv, Sock: base + ".sock", Offset: offset, Idle: o.IdleTimeout, ID: id}
	if err := startHolder(img, base, o.holderProgram(srv), a); err != nil {
		return nil, err
	}
	return join(base + ".sock")
}

// lockFile opens and locks the session's lock file. A holder that ends removes the file while
// it holds the lock: a launch that was waiting for that lock then holds the lock of a removed
// file, and opens the file anew.
func lockFile(name string) (*os.File, error) {
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("session lock: %w", err)
		}
		if err := flock(f, unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("session lock %s: %w", name, err)
		}
		if sameInode(f, name) {
			return f, nil
		}
		f.Close()
	}
}

// sameInode reports whether name still names the file open as f.
func sameInode(f *os.File, name string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(int(f.Fd()), &a) == nil && unix.Lstat(name, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// join connects to a holder, checks that it is the user's own, and receives its mount.
func join(sock string) (*Lease, error) {
	c, err := dial(sock)
	if err != nil {
		return nil, err
	}
	if _, err = c.Write([]byte{reqJoin}); err != nil {
		c.Close()
		return nil, fmt.Errorf("session %s: %w", sock, err)
	}
	c.SetReadDeadline(time.Now().Add(readyTimeout)) //nolint:errcheck // a deadline on a fresh conn
	buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err == nil && (n < 1 || buf[0] != 'M' || oobn == 0) {
		err = fmt.Errorf("holder refused: %s", strings.TrimSpace(string(buf[min(n, 1):max(n, 1)])))
	}
	var fd int
	if err == nil {
		fd, err = rightsFD(oob[:oobn])
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("session %s: %w", sock, err)
	}
	c.SetReadDeadline(time.Time{}) //nolint:errcheck // clears the deadline set above
	return &Lease{Mount: os.NewFile(uintptr(fd), "session mount"), conn: c}, nil
}

func rightsFD(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("bad descriptor message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("bad descriptor message: %v", err)
	}
	unix.CloseOnExec(fds[0])
	return fds[0], nil
}

// startHolder starts a holder for the image and waits until it serves its mount. The holder gets
// its own user and mount namespaces (to mount FUSE as a plain user), a new session (it must not
// get the terminal's or the job step's process-group signals) and no parent-death signal: it
// outlives the launch that started it, up to its idle timeout. It stays in the launcher's cgroup.
// base is the session's socket and lock file without their suffix; program is what the holder
// runs as (Options.holderProgram).
func startHolder(img *os.File, base, program string, a holderArgs) error {
	lnf, err := listenFile(base + ".sock")
	if err != nil {
		return err
	}
	defer lnf.Close()
	// A second open file description of the lock: the holder takes the lock before it ends,
	// and a lock on this launch's own description would be released with this launch's.
	lock, err := os.OpenFile(base+".lock", os.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("session lock: %w", err)
	}
	defer lock.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer readyR.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		readyW.Close()
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer null.Close()
	parent := parentPidfd(null)
	defer parent.Close()
	cmd := holderCommand(program, a, null, []*os.File{img, lnf, lock, readyW, parent})
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start the session holder: %w", err)
	}
	return awaitHolder(cmd, readyR)
}

// listenFile binds the session's socket and returns it as a file to pass to the holder. The
// socket file stays when this launch's listener closes: it is the holder's now.
func listenFile(sock string) (*os.File, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("session socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	lnf, err := ln.File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("session socket: %w", err)
	}
	return lnf, nil
}

// parentPidfd is a pidfd of the process that started this launch (a shell, a job script,
// Slurm's step daemon), or a duplicate of null when the kernel gives none: the holder ends as
// soon as it is idle once that process is gone. Under proctrack/linuxproc (and PBS) the holder,
// reparented to init, escapes the job's process tree, so it must not wait out its idle time after
// the job ended.
func parentPidfd(null *os.File) *os.File {
	if fd, err := unix.PidfdOpen(os.Getppid(), 0); err == nil {
		return os.NewFile(uintptr(fd), "parent")
	}
	if fd, err := unix.FcntlInt(null.Fd(), unix.F_DUPFD_CLOEXEC, 0); err == nil {
		return os.NewFile(uintptr(fd), os.DevNull)
	}
	return null
}

// holderCommand is the holder's process: in a user and mount namespace of its own (it mounts
// the image there), in a session of its own, with files as its descriptors 3 and up.
func holderCommand(program string, a holderArgs, null *os.File, files []*os.File) *exec.Cmd {
	uid, gid := os.Getuid(), os.Getgid()
	return &exec.Cmd{
		Path: program, Args: append([]string{"hpcctl", HolderArg}, a.encode()...),
		// The launch's own environment, as squashfuse_ll gets without sessions: job tools find a
		// job's processes by it. Its working directory is "/", so that it pins no directory.
		Env: os.Environ(), Dir: "/", Stdin: null, Stdout: null, Stderr: null,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			Setsid:      true,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
			// Mounting FUSE in the holder's user namespace; it is not root there, so execve would
			// clear a capability that is not ambient.
			AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN},
		},
	}
}

// awaitHolder waits for the started holder's word on its ready pipe: "ok", or why it failed.
func awaitHolder(cmd *exec.Cmd, readyR *os.File) error {
	// Reaped by init once this launch exits; a holder that fails says why on the pipe.
	go cmd.Wait()                                        //nolint:errcheck // its status is what it wrote on the pipe
	readyR.SetReadDeadline(time.Now().Add(readyTimeout)) //nolint:errcheck // pipes support deadlines
	msg, err := io.ReadAll(io.LimitReader(readyR, 4096))
	if err != nil || string(msg) != "ok" {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		return fmt.Errorf("session holder: %s%v", msg, err)
	}
	return nil
}

// holderArgs are what the launcher tells the holder on its command line. Both are the same build,
// so the format only has to be checked, not kept.
type holderArgs struct {
	Image, Sock string
	Server      serverChoice
	Offset      int64
	Idle        time.Duration
	ID          Identity
}

func (a holderArgs) encode() []string {
	return []string{a.Image, strconv.FormatInt(a.Offset, 10), string(a.Server.Kind), a.Server.Squashfuse, a.Idle.String(), a.Sock,
		strconv.FormatUint(a.ID.Dev, 10), strconv.FormatUint(a.ID.Ino, 10), strconv.FormatInt(a.ID.Size, 10), strconv.FormatInt(a.ID.MtimeNsec, 10)}
}

// decodeHolderArgs reads encode's arguments. Its error is one line: the holder writes it to the
// launch, which logs it as the reason it has no session.
func decodeHolderArgs(s []string) (holderArgs, error) {
	var a holderArgs
	if len(s) != 10 {
		return a, fmt.Errorf("holder arguments: want 10, got %d", len(s))
	}
	a.Image, a.Sock = s[0], s[5]
	a.Server = serverChoice{Kind: config.FUSEServer(s[2]), Squashfuse: s[3]}
	var errs [7]error
	errs[0] = a.Server.check()
	a.Offset, errs[1] = strconv.ParseInt(s[1], 10, 64)
	a.Idle, errs[2] = time.ParseDuration(s[4])
	a.ID.Dev, errs[3] = strconv.ParseUint(s[6], 10, 64)
	a.ID.Ino, errs[4] = strconv.ParseUint(s[7], 10, 64)
	a.ID.Size, errs[5] = strconv.ParseInt(s[8], 10, 64)
	a.ID.MtimeNsec, errs[6] = strconv.ParseInt(s[9], 10, 64)
	for _, err := range errs {
		if err != nil {
			return a, fmt.Errorf("holder arguments: %w", err)
		}
	}
	return a, nil
}
