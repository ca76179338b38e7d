package cli

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dieOf ends hpcctl with the signal that killed the program in the container, once everything
// hpcctl had to clean up is done. A shell, srun, sacct and PBS then see what they would see
// without a container ("Killed", ExitCode 0:9) instead of an exit code of 128+N, which a program
// may also return. No core file is written: the program's own dump, if any, is the one that
// matters, and hpcctl's would only fill the job's directory. It returns only if the signal did
// not end the process (a signal whose default action is not to terminate); Main then exits with
// 128+N.
func dieOf(sig syscall.Signal) {
	// A core dump needs a dumpable process and a non-zero RLIMIT_CORE (a core_pattern pipe
	// ignores the limit, hence both).
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}) //nolint:errcheck // best effort; dying matters more
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)     //nolint:errcheck // as above
	runtime.LockOSThread()
	if sig != unix.SIGKILL {
		// The kernel's default action, not Go's: os/signal's Reset gives SIGQUIT back to the Go
		// runtime, which would print every goroutine's stack, and Go catches every signal at
		// start. An all-zero struct sigaction is SIG_DFL with no flags and an empty mask, in
		// every architecture's layout.
		var dfl [4]uint64
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0) //nolint:errcheck // best effort, as above
		var set unix.Sigset_t
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
		unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil) //nolint:errcheck // Go leaves it unblocked anyway
	}
	// To this thread: the signal is delivered before the system call returns.
	unix.Tgkill(unix.Getpid(), unix.Gettid(), sig) //nolint:errcheck // falls back to the exit status
}
