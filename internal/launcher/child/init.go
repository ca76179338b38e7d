package child

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/signals"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// runInit stays as PID 1 of the container's PID namespace: it starts the program, passes on every
// signal it receives, reaps every orphan that the kernel reparents to it, and exits with the
// program's status (128+N when a signal N killed it). When it exits, the kernel kills what is left
// in the namespace.
func runInit(prog string, s *spec.Spec) error {
	// SIGCHLD has a channel of its own: one pending SIGCHLD stands for any number of exits, and a
	// burst of other signals must not push it out (os/signal drops what does not fit).
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, signals.NotIgnored(signals.Forwarded)...)
	pid, err := startProgram(prog, s)
	if err != nil {
		return err
	}
	// The program runs: let the parent see the socket close.
	unix.Close(SocketFD)
	stopping := false
	for {
		select {
		case <-chld:
			ws, done := reap(pid)
			switch {
			case done && s.Instance && !stopping:
				// An instance outlives its startscript, as Apptainer's do.
				pid = 0
			case done:
				writeExit(ws)
				return initExit{ExitStatus(ws)}
			}
		case sig := <-sigs:
			stopping = stopping || stops(sig)
			if pid > 0 {
				unix.Kill(pid, sig.(unix.Signal)) //nolint:errcheck // it may have just exited
			} else if stops(sig) {
				// An instance with no program left: the stop signal ends it, and the kernel kills what
				// is left in the namespace (joined programs included).
				return initExit{128 + int(sig.(unix.Signal))}
			}
		}
	}
}

// startProgram starts the program; prog "" (an instance without a startscript) starts none.
func startProgram(prog string, s *spec.Spec) (int, error) {
	if prog == "" {
		return 0, nil
	}
	proc, err := os.StartProcess(prog, s.Args, &os.ProcAttr{
		Env:   s.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return 0, fmt.Errorf("run %s in the container: %w", s.Args[0], err)
	}
	return proc.Pid, nil
}

// stops says whether a signal ends an instance whose program has exited.
func stops(sig os.Signal) bool {
	switch sig {
	case unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2:
		return true
	}
	return false
}

// initExit is how runInit reports the program's status to Main.
type initExit struct{ status int }

func (e initExit) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// reap collects every exited child; done is true once the program itself has exited, with its
// wait status.
func reap(pid int) (status unix.WaitStatus, done bool) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got <= 0 {
			return status, done
		}
		if got == pid {
			status, done = ws, true
		}
	}
}

// ExitStatus maps a wait status to the shell's convention: the exit code, or 128+N for signal N.
func ExitStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
