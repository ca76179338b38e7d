package starter

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// identity is the user who ran the starter: its real IDs and supplementary groups, which a
// setuid program inherits unchanged.
type identity struct {
	uid, gid int
	groups   []int
	ppid     int // hpcctl, whose death must end us
	lifeline int // under the relay: a pipe that only the relay can write, which closes when it dies
}

// callerIdentity reads the caller's identity, and who the parent must be: the process at the
// other end of the socket hpcctl made (SO_PEERCRED), which is still our parent unless it has
// died already, even before we could ask for its death signal. In the PID namespace the relay
// made, the parent is not visible (getppid is 0) and the relay's lifeline pipe says it instead.
// What could go wrong: the IDs are the kernel's real ones, which the user cannot forge; the
// parent, if taken from getppid alone, could already be init (hpcctl killed at once).
func callerIdentity() (identity, error) {
	groups, err := unix.Getgroups()
	if err != nil {
		return identity{}, fmt.Errorf("getgroups: %w", err)
	}
	id := identity{uid: unix.Getuid(), gid: unix.Getgid(), groups: groups, ppid: unix.Getppid()}
	if os.Getpid() == 1 {
		id.ppid, id.lifeline = 0, lifelineFD
		return id, nil
	}
	cred, err := unix.GetsockoptUcred(child.SocketFD, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return identity{}, fmt.Errorf("the socket from hpcctl: %w", err)
	}
	id.ppid = int(cred.Pid)
	return id, nil
}

// dieWithParent asks for SIGKILL when hpcctl (or the relay) dies. The kernel clears this setting
// on the setuid exec and on every change of effective or file-system IDs, so it is set again
// after each; if the parent died before it was set, we exit ourselves. What could go wrong: a
// starter that outlives a killed hpcctl would go on as root, holding mounts and a loop device.
func (id identity) dieWithParent() {
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0) //nolint:errcheck // cannot fail with a valid signal
	if p := unix.Getppid(); p != id.ppid {
		fmt.Fprintf(os.Stderr, "hpcctl-starter: hpcctl (PID %d) has gone (parent %d)\n", id.ppid, p)
		os.Exit(1)
	}
	if id.lifeline > 0 {
		fds := []unix.PollFd{{Fd: int32(id.lifeline), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, 0)
		for errors.Is(err, unix.EINTR) { // the Go runtime's preemption signals
			_, err = unix.Poll(fds, 0)
		}
		if err != nil || fds[0].Revents != 0 {
			fmt.Fprintf(os.Stderr, "hpcctl-starter: the relay has gone (%#x)\n", fds[0].Revents)
			os.Exit(1) // the relay's end closed: it died
		}
	}
}

// setfs switches this thread's file-system identity (setfsuid is per thread: the caller has
// locked it). From root to a user, the kernel also clears the file-system capabilities
// (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, ...) from the effective set, so that path
// lookups and permission checks are exactly the user's; back to root it raises them again.
// What could go wrong: setfsuid reports no error, only the previous value, so the result is
// read back and compared.
func setfs(uid, gid int) error {
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0) //nolint:errcheck // setfsgid reports no error: read back below
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0) //nolint:errcheck // setfsuid reports no error: read back below
	u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	if int(u) != uid || int(g) != gid {
		return fmt.Errorf("setfsuid(%d)/setfsgid(%d) did not take (fsuid %d, fsgid %d)", uid, gid, u, g)
	}
	return nil
}

// setupCaps are the capabilities the setup stage uses as the user's file-system identity:
// mounts, pivot_root and the host name (CAP_SYS_ADMIN), the loopback interface (CAP_NET_ADMIN),
// switching the file-system IDs and the final drop (CAP_SETUID, CAP_SETGID, CAP_SETPCAP). They
// alone are left in the effective set (the permitted set keeps the rest until the drop). What
// could go wrong otherwise: setfsuid clears only the file-system capabilities, and one left
// effective, such as CAP_SYS_PTRACE, would let the user's paths through another user's
// /proc/PID/root, /proc/PID/cwd or /proc/PID/fd links.
var setupCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETPCAP}

// setEffective makes caps exactly this thread's effective set, and none inheritable; it returns
// the sets it replaced.
func setEffective(caps []uintptr) ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		return saved, fmt.Errorf("capget: %w", err)
	}
	data := saved
	data[0].Effective, data[1].Effective, data[0].Inheritable, data[1].Inheritable = 0, 0, 0, 0
	for _, c := range caps {
		data[c/32].Effective |= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return saved, fmt.Errorf("set capabilities: %w", err)
	}
	return saved, nil
}

// asRoot runs f with root's file-system identity on this thread, for paths that are the
// starter's own (the loop devices, their lock), then gives the thread back the user's. (Back to
// fsuid 0 the kernel raises the file-system capabilities again, and lowers them after.) What
// could go wrong: f must touch no path of the user's, and a failed switch back ends the process.
func (id identity) asRoot(f func() error) error {
	if err := setfs(0, 0); err != nil {
		return err
	}
	err := f()
	if err2 := setfs(id.uid, id.gid); err2 != nil {
		// Continuing as root would resolve the user's paths with root's rights.
		fmt.Fprintf(os.Stderr, "hpcctl-starter: %v\n", err2)
		os.Exit(1)
	}
	id.dieWithParent() // each switch of the file-system IDs cleared it
	return err
}

// drop makes the process the user for good, on every thread (Go's Setresuid and friends act on
// all threads; prctl goes through AllThreadsSyscall), in the order that leaves no way back:
//  1. the bounding set is emptied while CAP_SETPCAP is still held, so that no later exec can
//     gain a capability from a file;
//  2. groups, then GIDs, then UIDs: setresuid from root to a user with SECBIT_KEEP_CAPS unset
//     clears the permitted, effective and ambient sets, so it must come last;
//  3. no_new_privs, so that no setuid file or file capability can raise anything again.
//
// Then it checks the result (capget, getresuid, a setuid(0) that must fail): a step that
// silently did nothing would otherwise leave root to the program.
func (id identity) drop() error {
	// The bounding set is per thread and inherited through execve from the thread that calls it:
	// this one (the others end at the exec, or, in a PID namespace's init, only run the Go
	// runtime, without capabilities or a way to gain one once no_new_privs is set). One
	// all-threads call per capability would stop the world some forty times.
	b, _ := os.ReadFile("/proc/sys/kernel/cap_last_cap") // none: every bit, EINVAL past the last
	last := rules.LastCap(b)
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !(errors.Is(err, unix.EINVAL) && c > 0) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := syscall.Setgroups(id.groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(id.gid, id.gid, id.gid); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(id.uid, id.uid, id.uid); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 {
		return fmt.Errorf("clear ambient capabilities: %w", e)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		return fmt.Errorf("set no_new_privs: %w", e)
	}
	id.dieWithParent()
	return id.checkDropped(last)
}

// checkDropped checks that drop took: no capability in any set, nor in the bounding set up to
// last, the user's IDs alone, root not to be had back, no_new_privs.
func (id identity) checkDropped(last int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective|data[0].Permitted|data[0].Inheritable|data[1].Effective|data[1].Permitted|data[1].Inheritable != 0 {
		return errors.New("capabilities are left after the drop")
	}
	for c := 0; c <= last; c++ {
		if n, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); n != 0 {
			return fmt.Errorf("capability %d is left in the bounding set", c)
		}
	}
	ru, eu, su := unix.Getresuid()
	rg, eg, sg := unix.Getresgid()
	if ru != id.uid || eu != id.uid || su != id.uid || rg != id.gid || eg != id.gid || sg != id.gid {
		return fmt.Errorf("UIDs are %d/%d/%d and GIDs %d/%d/%d after the drop", ru, eu, su, rg, eg, sg)
	}
	// Per thread, raw: if this succeeded, the drop failed and we are about to exit anyway.
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); e == 0 {
		return errors.New("root could be regained after the drop")
	}
	if n, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); n != 1 {
		return errors.New("no_new_privs is not set after the drop")
	}
	return nil
}
