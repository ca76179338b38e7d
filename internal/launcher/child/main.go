package child

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Main runs the child stage and returns its exit status; it returns only on failure (or, as PID 1,
// with the program's status). A setup failure is reported to the parent, which prints it.
func Main() int {
	// Capabilities, ambient sets and execve act per thread: keep all of it on this one.
	runtime.LockOSThread()
	for _, fd := range []int{SpecFD, SocketFD, ExitFD} {
		unix.CloseOnExec(fd)
	}
	s, err := readSpec()
	if errors.Is(err, errAbandoned) {
		return 0
	}
	var img, session *os.File
	var extras []*os.File
	if err == nil {
		img, session, err = receiveImage()
	}
	if err == nil {
		extras, err = receiveExtras(len(s.Images))
	}
	if err == nil {
		err = run(s, img, session, extras)
	}
	// run returns only on failure, or with the program's status as PID 1.
	return Finish(err)
}

// report sends the reason the container could not start to hpcctl, which prints it.
func report(err error) {
	if serr := sendPacket(SocketFD, MsgError, append([]byte{byte(statusOf(err))}, err.Error()...)); serr != nil {
		fmt.Fprintf(os.Stderr, "hpcctl: %v\n", err)
	}
}

// programError is a failure to start the program itself, with the shell's status for it.
type programError struct {
	status int
	err    error
}

func (e programError) Error() string { return e.err.Error() }
func (e programError) Unwrap() error { return e.err }

// statusOf returns the status the parent exits with: 127 when the program is not found and 126
// when it cannot be executed, as a shell does; 1 when the container could not be set up.
func statusOf(err error) int {
	var pe programError
	if errors.As(err, &pe) {
		return pe.status
	}
	return 1
}

func commandStatus(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotFound) {
		return 127
	}
	return 126
}

// errAbandoned is the parent closing the Spec pipe without a Spec: it started this process early
// (launcher.Prestart) and then did not launch, having failed or chosen otherwise.
var errAbandoned = errors.New("abandoned by hpcctl")

func readSpec() (*spec.Spec, error) {
	f := os.NewFile(SpecFD, "spec")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read the container spec: %w", err)
	}
	if len(b) == 0 {
		return nil, errAbandoned
	}
	var s spec.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode the container spec: %w", err)
	}
	return &s, s.Validate()
}

// receiveImage takes the image file the parent sends after the Spec, and the session's detached
// mount of it that the parent may send first.
func receiveImage() (img, session *os.File, err error) {
	m, err := Receive(SocketFD)
	if err == nil && m != nil && m.Kind == MsgMount && m.File != nil {
		session = m.File
		m, err = Receive(SocketFD)
	}
	if err == nil && (m == nil || m.Kind != MsgImage || m.File == nil) {
		err = errors.New("no image descriptor")
	}
	if err != nil {
		if session != nil {
			session.Close()
		}
		return nil, nil, fmt.Errorf("receive the image from hpcctl: %w", err)
	}
	return m.File, session, nil
}

func run(s *spec.Spec, img, session *os.File, extras []*os.File) error {
	log := newStepLog(s)
	if s.Namespaces.Net {
		if err := log.done(Step{Step: "loopback", Target: "lo", Flags: "up"}, loopbackUp()); err != nil {
			return err
		}
	}
	if err := setupRoot(s, img, session, extras, log); err != nil {
		return err
	}
	if s.Namespaces.UTS && s.Hostname != "" {
		if err := log.done(Step{Step: "hostname", Target: s.Hostname}, setHostname(s.Hostname)); err != nil {
			return err
		}
	}
	if err := log.done(Step{Step: "chdir", Target: s.Cwd}, enterCwd(s)); err != nil {
		return err
	}
	prog, err := lookPath(s.Args[0], s.Env)
	if err != nil && s.Instance && commandStatus(err) == 127 {
		// An instance of an image without a startscript runs no program, only its init.
		prog, err = "", nil
	}
	if err != nil {
		return programError{commandStatus(err), err}
	}
	if err = log.done(Step{Step: "privileges", Flags: log.privilegeFlags(s)}, dropPrivileges(s)); err != nil {
		return err
	}
	log.step(Step{Step: "exec", Source: prog, Target: s.Args[0]})

	if s.Umask != nil {
		unix.Umask(int(*s.Umask))
	}
	if s.Namespaces.PID {
		return runInit(prog, s)
	}
	// Everything but stdio is close-on-exec now; the parent sees the socket close and knows the
	// program started.
	if err = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close descriptors: %w", err)
	}
	err = unix.Exec(prog, s.Args, s.Env)
	return programError{commandStatus(err), fmt.Errorf("run %s in the container: %w", s.Args[0], err)}
}

func setHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	return nil
}
