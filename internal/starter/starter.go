// Package starter is the privileged part of hpcctl-starter, the optional setuid-root program
// that gives plain users kernel squashfs mounts where user namespaces are disabled or slow.
//
// hpcctl (the user's, untrusted) makes the Spec as always and execs the starter in place of its
// own setup stage, with the same descriptors. The starter treats all of it as hostile: it reads
// the site's root-owned configuration itself, checks the Spec's shape and the image (opened by
// the user, handed over as a descriptor), and then runs the usual setup stage
// (internal/launcher/child) as root in new namespaces but with the user's file-system identity,
// so that every user path is resolved and checked with the user's rights. Before the program
// (or anything of the image) runs, every privilege is dropped for good.
package starter

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/spec"
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
	if os.Geteuid() != 0 {
		return refuse(errors.New("hpcctl-starter is not setuid root: install it with make install-suid, or run hpcctl --userns"))
	}
	conf, err := loadConfig()
	if err == nil && !conf.AllowSetuid {
		err = fmt.Errorf("not allowed by %s (allow_setuid is false): run hpcctl --userns", conf.Path)
	}
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
		err = admit(conf, s, img, id)
	}
	if err == nil {
		err = unshare(s.Namespaces)
	}
	if err == nil {
		// From here on this thread resolves paths as the user, with only the capabilities the
		// setup needs.
		err = setfs(id.uid, id.gid)
		id.dieWithParent()
	}
	if err == nil {
		err = limitCaps()
	}
	if err != nil {
		return fail(err)
	}
	return child.RunPrivileged(s, img, &hooks{id: id})
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
	if environmentClean(os.Environ()) {
		return
	}
	err := syscall.Exec("/proc/self/exe", os.Args, []string{})
	fmt.Fprintf(os.Stderr, "hpcctl-starter: clear the environment: %v\n", err)
	os.Exit(1)
}

// environmentClean reports whether env is empty but for what the runtime adds in secure mode.
func environmentClean(env []string) bool {
	return len(env) == 0 || len(env) == 1 && env[0] == "GOTRACEBACK=none"
}

// unshare makes the container's namespaces for this thread, as root (no user namespace).
// The PID namespace, if any, exists already (relay).
func unshare(ns spec.Namespaces) error {
	flags := unix.CLONE_NEWNS
	for _, x := range []struct {
		on   bool
		flag int
	}{{ns.IPC, unix.CLONE_NEWIPC}, {ns.Net, unix.CLONE_NEWNET}, {ns.UTS, unix.CLONE_NEWUTS}} {
		if x.on {
			flags |= x.flag
		}
	}
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	return nil
}

// admit checks the Spec and the image before anything is mounted; it changes the Spec where it
// must (privileges are the starter's to decide, not the Spec's). The Spec comes from the user's
// hpcctl: everything in it is what the user asks for, nothing is trusted.
func admit(c *config.Config, s *spec.Spec, img *os.File, id identity) error {
	if s.Namespaces.User || len(s.UIDMap)+len(s.GIDMap) > 0 || !s.Namespaces.Mount {
		return errors.New("the launch asks for a user namespace or no mount namespace: run hpcctl --userns")
	}
	if s.Namespaces.PID != (os.Getpid() == 1) {
		return errors.New("the PID namespace of the launch and of the starter differ")
	}
	for _, ns := range []struct {
		on   bool
		name string
	}{{s.Namespaces.PID, "pid"}, {s.Namespaces.IPC, "ipc"}, {s.Namespaces.Net, "net"}, {s.Namespaces.UTS, "uts"}} {
		if ns.on && !slices.Contains(c.AllowedNamespaces, ns.name) {
			return fmt.Errorf("namespace %s is not in allowed_namespaces in %s", ns.name, c.Path)
		}
	}
	// The program never keeps a capability, and nothing it runs may gain one.
	s.KeepCapabilities, s.NoNewPrivileges = false, true
	if s.RootFS.Backend != spec.BackendLoop {
		return fmt.Errorf("it runs only SIF and squashfs images with the kernel (%s backend asked): run hpcctl --userns", s.RootFS.Backend)
	}
	if err := OwnersOf(c.KernelMountOwners).TrustedImage(img, id.uid); err != nil {
		return fmt.Errorf("image %s: the kernel mounts only images that you cannot change (%v); run it with hpcctl --userns, or ask the administrators to install it", s.RootFS.Image, err)
	}
	off, size, err := partition(img)
	if err != nil {
		return fmt.Errorf("image %s: %w", s.RootFS.Image, err)
	}
	s.RootFS.Offset, s.RootFS.Size = off, size
	if err := checkLimits(c, img); err != nil {
		return err
	}
	return checkPolicy(c, img)
}
