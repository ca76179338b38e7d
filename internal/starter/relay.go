package starter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/signals"
)

// lifelineFD is the relay's pipe in the new starter (after child.ExitFD).
const lifelineFD = 6

// relay starts the starter again as PID 1 of a new PID namespace, with hpcctl's descriptors
// (Spec, socket, exit pipe), then drops every privilege at once: it only forwards signals and
// returns the exit status. The new starter checks everything itself (it cannot tell it was not
// run by hand). What could go wrong: this process decides nothing from its input, and it holds no
// privilege while the container runs.
func relay(id identity) int {
	// The lifeline's write end stays here only (close-on-exec): the new starter sees the pipe
	// close when this process dies, in the moments its death signal is not set.
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer lifeW.Close()
	fds := []*os.File{os.NewFile(child.SpecFD, "spec"), os.NewFile(child.SocketFD, "socket"), os.NewFile(child.ExitFD, "exit"), lifeR}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{"hpcctl-starter", PIDFlag}, Env: []string{},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, ExtraFiles: fds,
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL},
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, signals.NotIgnored(signals.Relayed())...)
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start the PID namespace: %w", err))
	}
	for _, f := range fds {
		f.Close()
	}
	if err := id.drop(); err != nil {
		cmd.Process.Kill() //nolint:errcheck // failing anyway
		fmt.Fprintf(os.Stderr, "hpcctl: setuid starter: %v\n", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			cmd.Process.Signal(sig) //nolint:errcheck // it may have just exited
		case err := <-done:
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				return 1
			}
			return child.ExitStatus(unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus)))
		}
	}
}
