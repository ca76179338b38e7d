// Package signals names the signals hpcctl passes on to the program in a container, for the
// launcher and the container's init alike, and keeps a signal ignored at start ignored.
package signals

import (
	"os"
	"os/signal"
	"slices"

	"golang.org/x/sys/unix"
)

// Forwarded are passed on to the program by the container's init: everything a user or a
// batch system sends to stop, suspend, resume or notify a job (Slurm's --signal, LSF's and PBS's
// SIGXCPU before a CPU limit). It is the one list: the launcher forwards the same signals but the
// terminal's job-control stops (JobControl), for the reason given there.
var Forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH, unix.SIGALRM,
	unix.SIGXCPU, unix.SIGPWR}

// JobControl are the stops a terminal sends to its foreground process group (Ctrl-Z, a
// background read or write). The launcher must leave them to their default action: catching
// SIGTSTP would keep hpcctl running, so the shell, which waits for hpcctl, would never see the job
// stop. The program, in the same process group, receives them from the terminal itself. The
// container's init must catch them (a namespace's PID 1 gets no default action for a signal it
// does not handle), and passes them on.
var JobControl = []os.Signal{unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}

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

// Relayed are what a process between the caller and the container's init passes on (the
// launcher, the setuid starter's relay): Forwarded but JobControl, for the reason given there.
func Relayed() []os.Signal {
	var out []os.Signal
	for _, s := range Forwarded {
		if !slices.Contains(JobControl, s) {
			out = append(out, s)
		}
	}
	return out
}
