// Package starter is the privileged part of hpcctl-starter, the optional setuid-root program
// that gives plain users kernel squashfs mounts where user namespaces are disabled or slow.
//
// hpcctl (the user's, untrusted) makes the Spec as always and execs the starter in place of its
// own setup stage, with the same descriptors. The starter treats all of it as hostile: it reads
// the site's root-owned configuration itself, checks the Spec's shape and the image (opened by
// the user, handed over as a descriptor), and then runs the usual setup stage
// (internal/launcher/child) as root in new namespaces but with the user's file-system identity,
// so that every user path is resolved and checked with the user's rights. Before the program
// (or anything of the image) runs, every privilege is dropped for good. The pure decisions it
// applies (tables, parsers, predicates on values it has read) are in internal/starter/rules.
package starter

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

// PIDFlag, the starter's only argument, asks for a PID namespace: the starter then starts itself
// again as PID 1 of a new one (a process cannot enter a PID namespace it makes) and relays.
const PIDFlag = "--pid"

// Main runs the starter and returns its exit status.
func Main() int {
	// Namespaces, file-system IDs and capabilities below are per thread: all of it happens on
	// this one, which also execs the program.
	runtime.LockOSThread()
	cleanEnvironment()
	// hpcctl's descriptors must not reach the program (it sees the socket close as the program
	// starts); nor must the relay's lifeline.
	for _, fd := range []int{child.SpecFD, child.SocketFD, child.ExitFD, lifelineFD} {
		unix.CloseOnExec(fd)
	}
	id, err := callerIdentity()
	if err != nil {
		return fail(err)
	}
	id.dieWithParent()
	conf, err := siteAllows()
	if err != nil {
		return refuse(err)
	}
	if len(os.Args) > 1 && os.Args[1] == PIDFlag && os.Getpid() != 1 {
		return relay(id)
	}
	s, img, err := child.ReadSetup()
	if errors.Is(err, child.ErrAbandoned) {
		return 0
	}
	if err == nil {
		err = prepare(conf, s, img, id)
	}
	if err != nil {
		return fail(err)
	}
	return child.RunPrivileged(s, img, &hooks{id: id})
}

// prepare admits the launch, makes its namespaces and takes the user's file-system identity.
func prepare(conf *config.Config, s *spec.Spec, img *os.File, id identity) error {
	if err := admit(conf, s, img, id); err != nil {
		return err
	}
	// What could go wrong: a mount in the host's mount namespace would reach every process;
	// rules.CheckSpec has refused a user namespace, and the PID one exists already (relay).
	if err := unix.Unshare(rules.UnshareFlags(s.Namespaces)); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	// From here on this thread resolves paths as the user, with only the capabilities the setup
	// needs. What could go wrong: the kernel clears the death signal on the change, so it is set
	// again before anything waits on hpcctl.
	err := setfs(id.uid, id.gid)
	id.dieWithParent()
	if err == nil {
		_, err = setEffective(setupCaps)
	}
	return err
}

// refuse takes the Spec and the image from hpcctl, and then fails with err: hpcctl reads the
// reason only if the image it sent was received (child.ReadSetup).
func refuse(err error) int {
	if _, _, rerr := child.ReadSetup(); errors.Is(rerr, child.ErrAbandoned) {
		return 0
	}
	return fail(err)
}

// fail reports err to hpcctl (or on stderr) and returns the exit status.
func fail(err error) int {
	return child.Finish(fmt.Errorf("setuid starter: %w", err))
}

// cleanEnvironment starts the starter again with an empty environment when it has any other. A
// setuid Go program sees AT_SECURE, but the Go runtime then only forces GOTRACEBACK=none
// (runtime/security_unix.go): GODEBUG, GOGC, GOMEMLIMIT and GOMAXPROCS still act, and a
// LD_* or locale variable would reach what the starter runs (the signature companion). hpcctl
// execs the starter with an empty environment, so only a starter run by hand pays for this.
// What could go wrong: the re-exec of /proc/self/exe is this same file (the kernel's link, not a
// path), setuid again, so it cannot be swapped.
func cleanEnvironment() {
	if rules.EnvironmentClean(os.Environ()) {
		return
	}
	err := syscall.Exec("/proc/self/exe", os.Args, []string{})
	fmt.Fprintf(os.Stderr, "hpcctl-starter: clear the environment: %v\n", err)
	os.Exit(1)
}
