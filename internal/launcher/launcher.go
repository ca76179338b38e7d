// Package launcher is the parent side of a container launch: it opens the image, starts the child
// stage in new namespaces with the Spec, serves the image with squashfuse_ll when asked, forwards
// signals and returns the program's exit status.
package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/session"
	"github.com/hpcctl/hpcctl/internal/signals"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// Options are the launcher's own settings.
type Options struct {
	Logger *slog.Logger
	// Squashfuse is the squashfuse_ll program (BackendSquashfuse).
	Squashfuse string
	// Interactive is true when stdin is a terminal: the terminal then sends SIGINT and SIGQUIT to
	// the program itself, and forwarding them too would deliver them twice.
	Interactive bool
	// Image is the image already open (and checked against the site's signature policy) by the
	// caller; Run mounts this descriptor rather than opening Spec.RootFS.Image again, so the file
	// checked is the file run. Run does not close it. Nil: Run opens the path itself.
	Image *os.File
	// Stdin, Stdout and Stderr replace hpcctl's own for the program (nil keeps them). Files, not
	// pipes to buffers: a process the program left in the background may hold them open after it
	// exits, and copying from a pipe would then wait for it.
	Stdin          *os.File
	Stdout, Stderr *os.File
	// Timeout, when positive, kills the container (SIGKILL) that runs longer; Run then returns
	// ErrTimedOut with the status.
	Timeout time.Duration
	// Starter is the setuid starter (cmd/hpcctl-starter) to start in place of hpcctl's own setup
	// stage, for a Spec without a user namespace; "" starts hpcctl's own.
	Starter string
	// Session, when not nil, shares the image's mount with the user's other containers of the
	// same image on this node (squashfuse backend in a user namespace only; internal/session).
	Session *session.Options
	// Prestarted is a setup process started early with Prestart (with these same options); Run uses it
	// when its shape fits the Spec, and ends it and starts another otherwise. Nil: Run starts one.
	Prestarted *Pending
	// Started, when set, is called with the setup process's PID once the program has started (the
	// container is set up): an instance's monitor records it then for joins.
	Started func(pid int)
}

// ErrTimedOut is returned by Run, with the status, when the program ran past Options.Timeout.
var ErrTimedOut = errors.New("the program ran past its time limit and was killed")

// forwarded are the signals hpcctl passes on to the program: the container init's list but the
// terminal's job-control stops, which must stop hpcctl itself (signals.JobControl says why).
// Slurm stops a job with SIGTERM (then SIGKILL), and users and batch systems use the others; a
// signal hpcctl did not catch (SIGXCPU and SIGPWR, before issue 18) killed hpcctl, and with it the
// program by SIGKILL, without the program ever seeing it.
var forwarded = signals.Relayed()

// Status is how the program ended.
type Status struct {
	// Code is the exit code, or 128+N when signal N killed the program (the shell's convention).
	Code int
	// Signal is the signal that killed the program, 0 when it exited.
	Signal unix.Signal
	// Session says how the image was mounted: "joined" a shared image session, "started" one,
	// or "" without a session.
	Session string
}

// statusOf reads a wait status.
func statusOf(ws unix.WaitStatus) Status {
	st := Status{Code: child.ExitStatus(ws)}
	if ws.Signaled() {
		st.Signal = ws.Signal()
	}
	return st
}

// Run launches the container the Spec describes and waits for it. It returns how the program
// ended, or an error when the container could not start. A ctx cancelled before the container
// starts (hpcctl was told to stop while it prepared) starts nothing and returns its cause; once
// the container runs, signals reach the program instead.
func Run(ctx context.Context, s *spec.Spec, o Options) (Status, error) {
	if err := s.Validate(); err != nil {
		return Status{}, fmt.Errorf("container spec: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	img := o.Image
	if img == nil {
		var err error
		if img, err = openImage(s.RootFS); err != nil {
			return Status{}, err
		}
		defer img.Close()
	}
	extras, err := openExtraImages(s.Images)
	if err != nil {
		return Status{}, err
	}
	defer closeAll(extras)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, signals.NotIgnored(forwarded)...)
	defer signal.Stop(sigs)
	if ctx.Err() != nil {
		return Status{}, context.Cause(ctx)
	}
	c, err := o.Prestarted.take(s.Shape(), o)
	if err != nil {
		return Status{}, err
	}
	lease := acquireSession(s, img, o)
	defer lease.Close()
	if err := c.send(s, append([]*os.File{img}, extras...), lease); err != nil {
		c.end()
		return Status{}, err
	}
	o.Logger.Debug("container setup started", "pid", c.cmd.Process.Pid, "backend", s.RootFS.Backend)
	servers, startErr := c.serve(s, img, extras, o)
	o.Logger.Debug("container setup finished", "err", startErr)
	if startErr == nil && o.Started != nil {
		o.Started(c.cmd.Process.Pid)
	}
	status, waitErr := c.wait(sigs, o)
	o.Logger.Debug("program exited", "status", status)
	for _, fuse := range servers {
		// The program has exited: the server goes now rather than when the kernel tears the
		// mount namespace down, which a process left in the background could delay for ever.
		if err := fuse.Stop(0); err != nil {
			o.Logger.Warn("squashfuse_ll", "err", err)
		}
	}
	if startErr != nil {
		return Status{}, startErr
	}
	status.Session = lease.kind()
	return status, waitErr
}

// acquireSession returns a lease on the image's shared session when the launch may use one, or
// nil: the launch then mounts the image itself, as without sessions. A session that cannot be
// had is not an error (the launch works without it), but the reason is shown.
func acquireSession(s *spec.Spec, img *os.File, o Options) *sessionLease {
	if o.Session == nil || o.Starter != "" || s.RootFS.Backend != spec.BackendSquashfuse || !s.Namespaces.User {
		return nil
	}
	l, err := session.Acquire(img, s.RootFS.Image, s.RootFS.Offset, *o.Session)
	if err != nil {
		// A holder that failed (squashfuse_ll could not serve the image) fails this launch's own
		// mount too, which then says why in one line; a refused directory is the user's to fix.
		level := slog.LevelDebug
		var de *session.DirError
		if errors.As(err, &de) {
			level = slog.LevelWarn
		}
		o.Logger.Log(context.Background(), level, "no shared image session, mounting the image for this container alone", "err", err)
		return nil
	}
	o.Logger.Debug("shared image session", "joined", l.Joined)
	return &sessionLease{l}
}

// sessionLease is a session lease that may be nil.
type sessionLease struct{ *session.Lease }

func (l *sessionLease) Close() {
	if l != nil {
		l.Lease.Close()
	}
}

func (l *sessionLease) kind() string {
	switch {
	case l == nil:
		return ""
	case l.Joined:
		return "joined"
	}
	return "started"
}

// openImage opens the image with the user's own rights; the child uses this descriptor, so no path
// is looked up again with more privilege.
func openImage(r spec.RootFS) (*os.File, error) {
	flags := os.O_RDONLY
	if r.Backend == spec.BackendDir {
		flags |= unix.O_DIRECTORY
	}
	f, err := os.OpenFile(r.Image, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	return f, nil
}

// openExtraImages opens the Spec's extra images (image binds and overlays) with the user's own
// rights, as openImage does the root image.
func openExtraImages(ims []spec.Image) ([]*os.File, error) {
	var fs []*os.File
	for _, im := range ims {
		f, err := os.OpenFile(im.Path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll(fs)
			return nil, fmt.Errorf("open image %s: %w", im.Path, err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// StartError is a container that could not start; Status is what hpcctl exits with (127 for a
// program that is not found, 126 for one that cannot run, as a shell does; 1 otherwise).
type StartError struct {
	Status int
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// setupProcess is the container's setup process (the child stage), started in its namespaces and
// waiting for its Spec and image.
type setupProcess struct {
	cmd   *exec.Cmd
	specW *os.File // the Spec goes here; closing it unsent tells the stage to exit quietly
	sock  int      // to and from the stage: the image descriptor out, FUSE connections and errors in
	// exitR reads the program's wait status from the container's init (child.ExitFD): init
	// cannot die of the program's signal, so its own exit status cannot say how the program died.
	exitR *os.File
	shape spec.Shape
	o     Options // the options it was started with (stdio, process group)
}

// Pending is a setup process Prestart is starting.
type Pending struct {
	ready chan struct{} // closed once the start has succeeded or failed
	st    *setupProcess
	err   error
	used  bool // taken by Run, or abandoned
}

// Prestart starts the container's setup process for a Spec of shape sh before the Spec is made,
// in the background: the process start (clone, ID maps, exec) and its Go runtime then overlap
// opening and reading the image. Pass it to Run in Options.Prestarted, and call Abandon when Run is not
// reached. A stage that could not start is started again by Run, which then says why.
func Prestart(sh spec.Shape, o Options) *Pending {
	p := &Pending{ready: make(chan struct{})}
	go func() {
		defer close(p.ready)
		p.st, p.err = spawn(sh, o)
	}()
	return p
}

// take returns the prestarted stage when it started for this shape and these options, or ends it
// and starts a new one.
func (p *Pending) take(sh spec.Shape, o Options) (*setupProcess, error) {
	if p.Fits(sh, o) {
		p.used = true
		return p.st, nil
	}
	p.Abandon()
	return spawn(sh, o)
}

// fits reports whether a stage started with options a can serve a launch with options b.
func (a Options) fits(b Options) bool {
	return a.Stdin == b.Stdin && a.Stdout == b.Stdout && a.Stderr == b.Stderr && (a.Timeout > 0) == (b.Timeout > 0) && a.Starter == b.Starter
}

// Fits reports whether the stage p is starting can serve a launch of shape sh with options o
// (it waits for the start to end); a nil or used Pending fits nothing.
func (p *Pending) Fits(sh spec.Shape, o Options) bool {
	if p == nil || p.used {
		return false
	}
	<-p.ready
	return p.err == nil && p.st.shape.Equal(sh) && p.st.o.fits(o)
}

// Abandon ends a stage that Run did not take; it does nothing to one Run took (or to nil).
func (p *Pending) Abandon() {
	if p == nil || p.used {
		return
	}
	p.used = true
	<-p.ready
	if p.err == nil {
		p.st.end()
	}
}

// end kills the stage and waits for it.
func (st *setupProcess) end() {
	st.specW.Close()
	st.exitR.Close()
	unix.Close(st.sock)
	st.cmd.Process.Kill() //nolint:errcheck // it may have exited on seeing the Spec pipe close
	st.cmd.Wait()         //nolint:errcheck // killed on purpose
}

func spawn(sh spec.Shape, o Options) (*setupProcess, error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer specR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		specW.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer exitW.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		specW.Close()
		exitR.Close()
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	childSock := os.NewFile(uintptr(pair[1]), "socket")
	defer childSock.Close()
	// The stage's own environment is TZ= alone (the program gets the Spec's): an empty TZ is UTC
	// to Go, so that a package initialisation asking for the local zone (BurntSushi/toml's) does
	// not read and parse /etc/localtime in every container's start (~0.5 ms here).
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{"hpcctl", child.SetupArg},
		Env:         []string{"TZ="},
		Stdin:       orFile(o.Stdin, os.Stdin),
		Stdout:      orFile(o.Stdout, os.Stdout),
		Stderr:      orFile(o.Stderr, os.Stderr),
		ExtraFiles:  []*os.File{specR, childSock, exitW},
		SysProcAttr: sysProcAttr(sh, o),
	}
	if o.Starter != "" {
		useStarter(cmd, sh, o)
	}
	if err := cmd.Start(); err != nil {
		specW.Close()
		exitR.Close()
		unix.Close(pair[0])
		return nil, fmt.Errorf("start the container: %w%s", err, hintFor(sh, err))
	}
	if sh.Namespaces.User {
		if err := writeMaps(cmd.Process.Pid, sh); err != nil {
			st := &setupProcess{cmd: cmd, specW: specW, sock: pair[0], exitR: exitR}
			st.end()
			return nil, &StartError{Status: 1, Err: err}
		}
	}
	return &setupProcess{cmd: cmd, specW: specW, sock: pair[0], exitR: exitR, shape: sh, o: o}, nil
}

// send gives the stage its Spec and the image descriptors, opened with the user's own rights:
// the root image's, then one for each of the Spec's Images.
func (st *setupProcess) send(s *spec.Spec, imgs []*os.File, lease *sessionLease) error {
	payload, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode the container spec: %w", err)
	}
	// The stage reads the whole Spec before it does anything else, so writing it here cannot
	// block for long; a failed write (the stage died) shows as the stage's error.
	st.specW.Write(payload) //nolint:errcheck // see above
	st.specW.Close()
	if lease != nil {
		err := child.SendFD(st.sock, child.MsgMount, int(lease.Mount.Fd()))
		// The stage has its own copy now; ours would keep the detached mount alive in vain.
		lease.Mount.Close()
		lease.Mount = nil
		if err != nil {
			return fmt.Errorf("hand the image session's mount to the container's setup process: %w", err)
		}
	}
	for _, img := range imgs {
		if err := child.SendFD(st.sock, child.MsgImage, int(img.Fd())); err != nil {
			return fmt.Errorf("hand the image to the container's setup process: %w", err)
		}
	}
	return nil
}

func orFile(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// hintFor says what to do when the kernel refuses the namespaces.
func hintFor(sh spec.Shape, err error) string {
	if sh.Namespaces.User && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL)) {
		return " (unprivileged user namespaces are disabled: ask the administrators to enable them, e.g. sysctl user.max_user_namespaces and kernel.unprivileged_userns_clone)"
	}
	return ""
}

func sysProcAttr(s spec.Shape, o Options) *syscall.SysProcAttr {
	// With a time limit the container gets its own process group, so that the limit ends the
	// processes the program started too when there is no PID namespace to do it.
	// Pdeathsig: the container dies with hpcctl. Without it, a kill -9 of hpcctl under a PID
	// namespace left the container's init and program running, holding the image. It acts when
	// the thread that started the stage exits; Go ends a thread only when a goroutine locked to
	// it returns, which the goroutines that spawn never are.
	a := &syscall.SysProcAttr{Cloneflags: cloneFlags(s.Namespaces), Setpgid: o.Timeout > 0, Pdeathsig: syscall.SIGKILL}
	if s.Namespaces.User {
		// Go forks a full copy of hpcctl for a new user namespace (it would write the ID maps
		// between fork and exec, while the child waits): 4-6 ms of every plain user's start
		// here. Asked for explicitly, vfork shares the memory and suspends hpcctl only until the
		// exec, ~1 ms; the maps are written after the exec instead (writeMaps), before the stage
		// gets its Spec, which it waits for before doing anything.
		a.Cloneflags |= unix.CLONE_VM | unix.CLONE_VFORK
		// The child keeps these capabilities in the new namespace across its exec: it is not root
		// there, so without ambient capabilities execve would clear them all. Mounting needs
		// CAP_SYS_ADMIN; overlayfs keeps the mounter's credentials for its own work, makes its
		// work directory mode 0 (CAP_DAC_OVERRIDE) and its whiteouts as character devices
		// (CAP_MKNOD). In a user namespace they act only on what the namespace owns; the child
		// clears them all before the program runs.
		a.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_MKNOD, unix.CAP_DAC_OVERRIDE}
		if s.Namespaces.Net {
			// Bringing up the new network namespace's loopback interface.
			a.AmbientCaps = append(a.AmbientCaps, unix.CAP_NET_ADMIN)
		}
		if needsMapHelper(s) {
			a.AmbientCaps = allCaps()
		}
	}
	return a
}

func cloneFlags(ns spec.Namespaces) uintptr {
	var f uintptr
	for _, x := range []struct {
		on   bool
		flag uintptr
	}{
		{ns.User, unix.CLONE_NEWUSER}, {ns.Mount, unix.CLONE_NEWNS}, {ns.PID, unix.CLONE_NEWPID},
		{ns.Net, unix.CLONE_NEWNET}, {ns.UTS, unix.CLONE_NEWUTS}, {ns.IPC, unix.CLONE_NEWIPC},
	} {
		if x.on {
			f |= x.flag
		}
	}
	return f
}

// serve answers the child until it has exec'd the program (the socket closes) or failed. A FUSE
// connection from the child gets a squashfuse_ll: for the root image, or for the extra image
// its text numbers (from 1).
func (st *setupProcess) serve(s *spec.Spec, img *os.File, extras []*os.File, o Options) (servers []*mount.Squashfuse, err error) {
	defer unix.Close(st.sock)
	var killed []func() bool
	defer func() {
		for _, k := range killed {
			if k() && err == nil {
				err = &StartError{Status: 1, Err: errors.New("squashfuse_ll exited before the container started (see its messages above)")}
			}
		}
	}()
	for {
		m, rerr := child.Receive(st.sock)
		if rerr != nil || m == nil {
			return servers, rerr
		}
		switch m.Kind {
		case child.MsgLog:
			// Sent only when the Spec asks for debug logging.
			step, perr := child.ParseStep(m.Text)
			if perr != nil {
				o.Logger.Debug("container setup: unreadable step", "text", m.Text, "err", perr)
				continue
			}
			o.Logger.Debug("container setup", step.Attrs()...)
		case child.MsgError:
			return servers, &StartError{Status: m.Status, Err: errors.New(m.Text)}
		case child.MsgFUSE:
			image, offset, ferr := fuseImage(s, img, extras, m.Text)
			var fuse *mount.Squashfuse
			if ferr == nil {
				fuse, ferr = mount.StartSquashfuse(o.Squashfuse, image, offset, m.File, o.Logger)
			}
			// Our copy must go: the server's must be the last, so that its death ends the connection.
			m.File.Close()
			if ferr != nil {
				st.cmd.Process.Kill() //nolint:errcheck // it may wait for a server that never came
				return servers, ferr
			}
			servers = append(servers, fuse)
			killed = append(killed, st.killIfServerDies(fuse))
		}
	}
}

// fuseImage is the image a FUSE connection from the child is for: the root image when text is
// empty, else the extra image it numbers from 1.
func fuseImage(s *spec.Spec, img *os.File, extras []*os.File, text string) (*os.File, int64, error) {
	if text == "" {
		return img, s.RootFS.Offset, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || n > len(extras) {
		return nil, 0, fmt.Errorf("the container's setup process asked to serve image %q of %d", text, len(extras))
	}
	return extras[n-1], s.Images[n-1].Offset, nil
}

// killIfServerDies ends the child if the server exits before the child has exec'd the program,
// until the returned function is called; that function reports whether it did. The child keeps a
// copy of a synchronous connection until it has mounted it (mount.MountFUSEConn), so the server's
// death alone would not end the connection, and the mount would wait for an answer for ever.
func (st *setupProcess) killIfServerDies(fuse *mount.Squashfuse) (stop func() bool) {
	done, result := make(chan struct{}), make(chan bool, 1)
	go func() {
		select {
		case <-fuse.Done():
			if st.programStarted() {
				result <- false
				return
			}
			st.cmd.Process.Kill() //nolint:errcheck // it may have just exited
			result <- true
		case <-done:
			result <- false
		}
	}()
	return func() bool {
		close(done)
		return <-result
	}
}

// programStarted reports whether the setup process has closed its end of the socket, which it does
// as the program starts. The server also exits when a program that already ran ends (the kernel
// tears its mount namespace down): a quick program can do all that before serve reads the end of
// the socket, and the two events then look simultaneous here. The socket tells them apart: it
// closed before the program started, so before the server could end that way.
func (st *setupProcess) programStarted() bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(st.sock, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err == nil && n == 0
}

// wait forwards signals until the child exits and returns how the program ended.
func (st *setupProcess) wait(sigs <-chan os.Signal, o Options) (Status, error) {
	defer st.exitR.Close()
	done := make(chan error, 1)
	go func() { done <- st.cmd.Wait() }()
	var expired <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		expired = t.C
	}
	timedOut := false
	for {
		select {
		case <-expired:
			// Without a PID namespace the program's own children may outlive it; with one, the
			// init's death ends them all.
			timedOut = true
			unix.Kill(-st.cmd.Process.Pid, unix.SIGKILL) //nolint:errcheck // it may have just exited
		case sig := <-sigs:
			if o.Interactive && (sig == unix.SIGINT || sig == unix.SIGQUIT) {
				continue
			}
			st.cmd.Process.Signal(sig) //nolint:errcheck // it may have just exited
		case err := <-done:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				return Status{}, fmt.Errorf("wait for the container: %w", err)
			}
			status := st.programStatus()
			if timedOut {
				return status, ErrTimedOut
			}
			return status, nil
		}
	}
}

// programStatus is how the program ended, once the stage has exited: what the container's init
// reported on its exit pipe, or, without an init (the stage became the program), the stage's own
// wait status. Every writer of the pipe has exited by then, so the read cannot block.
func (st *setupProcess) programStatus() Status {
	if ws, ok := child.ReadExit(st.exitR); ok {
		return statusOf(ws)
	}
	return statusOf(unix.WaitStatus(st.cmd.ProcessState.Sys().(syscall.WaitStatus)))
}
