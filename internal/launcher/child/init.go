package child

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

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
	signal.Notify(sigs, NotIgnored(ForwardedSignals)...)
	proc, err := os.StartProcess(prog, s.Args, &os.ProcAttr{
		Env:   s.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return fmt.Errorf("run %s in the container: %w", s.Args[0], err)
	}
	// The program runs: let the parent see the socket close.
	unix.Close(SocketFD)
	for {
		select {
		case <-chld:
			if ws, done := reap(proc.Pid); done {
				writeExit(ws)
				return initExit{ExitStatus(ws)}
			}
		case sig := <-sigs:
			proc.Signal(sig) //nolint:errcheck // it may have just exited
		}
	}
}

// ForwardedSignals are passed on to the program by the container's init: everything a user or a
// batch system sends to stop, suspend, resume or notify a job (Slurm's --signal, LSF's and PBS's
// SIGXCPU before a CPU limit). It is the one list: the launcher forwards the same signals but the
// terminal's job-control stops (JobControlSignals), for the reason given there.
var ForwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH, unix.SIGALRM,
	unix.SIGXCPU, unix.SIGPWR}

// JobControlSignals are the stops a terminal sends to its foreground process group (Ctrl-Z, a
// background read or write). The launcher must leave them to their default action: catching
// SIGTSTP would keep hpcctl running, so the shell, which waits for hpcctl, would never see the job
// stop. The program, in the same process group, receives them from the terminal itself. The
// container's init must catch them (a namespace's PID 1 gets no default action for a signal it
// does not handle), and passes them on.
var JobControlSignals = []os.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}

// NotIgnored drops the signals this process was started with ignored. Catching one would undo the
// ignoring for the program too (execve resets caught signals to their default, but keeps ignored
// ones ignored): under nohup, SIGHUP must stay ignored, as it would be for the program run natively.
func NotIgnored(sigs []os.Signal) []os.Signal {
	var out []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
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
