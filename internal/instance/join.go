package instance

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// namespaces a join enters, as nsenter's options and /proc/PID/ns names.
var namespaces = []struct{ opt, ns string }{
	{"--mount", "mnt"}, {"--pid", "pid"}, {"--ipc", "ipc"}, {"--uts", "uts"}, {"--net", "net"},
}

// JoinCommand is the command that runs argv inside a running instance: util-linux nsenter, which
// is single-threaded C. setns(2) into a user namespace needs a single-threaded caller and into a
// mount namespace one that shares no fs_struct with other threads (the kernel returns EINVAL),
// neither of which a started Go runtime can be; a C constructor (runc's nsexec) would need cgo.
// nsenter stays the joining hpcctl's child, so the program sits in the caller's Slurm job (its
// cgroup), and with --pid it forks into the instance's PID namespace, so it dies with the
// instance.
func JoinCommand(nsenter string, r *Record, argv []string) (*exec.Cmd, error) {
	args := []string{"-t", strconv.Itoa(r.InitPID)}
	same, err := sameNS(r.InitPID, "user")
	if err != nil {
		return nil, err
	}
	if !same {
		// Keep the caller's IDs: the container maps them to themselves. Without it nsenter
		// would become root in the namespace.
		args = append(args, "--user", "--preserve-credentials")
	}
	for _, n := range namespaces {
		// Only the instance's own: after --user the caller holds no capability over the host's
		// namespaces, and setns(2) into them fails with EPERM.
		if same, err = sameNS(r.InitPID, n.ns); err != nil {
			return nil, err
		}
		if !same {
			args = append(args, n.opt)
		}
	}
	args = append(args, "--root", "--wd="+r.Cwd, "--")
	args = append(args, argv...)
	cmd := exec.Command(nsenter, args...)
	cmd.Env = r.Env
	return cmd, nil
}

// sameNS says whether the caller shares namespace ns with pid; joining one's own user namespace
// is an error (EINVAL) for setns(2).
func sameNS(pid int, ns string) (bool, error) {
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		return false, fmt.Errorf("join the instance: its container (PID %d): %w", pid, err)
	}
	ours, err := os.Readlink("/proc/self/ns/" + ns)
	if err != nil {
		return false, fmt.Errorf("join the instance: %w", err)
	}
	return theirs == ours, nil
}
