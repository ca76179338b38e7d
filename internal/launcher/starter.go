package launcher

import (
	"os/exec"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/starter"
)

// useStarter makes cmd start the setuid starter instead of hpcctl's own setup stage, with the
// same descriptors and an empty environment. The starter makes the namespaces itself (as root, no
// user namespace): hpcctl, unprivileged, cannot. It is asked for a PID namespace by argument,
// which it checks against the Spec.
func useStarter(cmd *exec.Cmd, sh spec.Shape, o Options) {
	cmd.Path = o.Starter
	cmd.Args = []string{"hpcctl-starter"}
	if sh.Namespaces.PID {
		cmd.Args = append(cmd.Args, starter.PIDFlag)
	}
	// The kernel clears the parent-death signal on a setuid exec: the starter sets its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: o.Timeout > 0}
	// No TZ= (see spawn): the starter re-executes itself to start from an empty environment,
	// which cost every launch through it ~13% more than the variable saves.
	cmd.Env = []string{}
}
