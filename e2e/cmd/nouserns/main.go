// Command nouserns runs a command on a host that seems to have unprivileged user namespaces
// disabled, for the end-to-end tests: `sysctl user.max_user_namespaces` is read-only in the test
// machines. Run as root, it installs a seccomp filter that fails unshare(2) and clone(2) asking
// for CLONE_NEWUSER with EPERM (as kernel.unprivileged_userns_clone=0 does) and clone3(2) with
// ENOSYS (its flags are in memory a filter cannot read; callers then fall back to clone), and
// execs the command, which drops to the test user itself (setpriv). The filter is installed
// without no_new_privs, which root may do, so that setuid programs still work under it.
//
//	nouserns setpriv --reuid=U --regid=G --init-groups -- unshare -U true   # fails
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// auditArch is the seccomp architecture of the syscall numbers x/sys/unix gives for GOARCH.
var auditArch = map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nouserns COMMAND [ARGS...]")
		os.Exit(2)
	}
	// seccomp(2) without TSYNC filters the calling thread, which then execs.
	runtime.LockOSThread()
	if err := install(); err != nil {
		fmt.Fprintf(os.Stderr, "nouserns: %v\n", err)
		os.Exit(1)
	}
	path, err := exec.LookPath(os.Args[1])
	if err == nil {
		err = syscall.Exec(path, os.Args[1:], os.Environ())
	}
	fmt.Fprintf(os.Stderr, "nouserns: %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

func install() error {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("no seccomp architecture for %s", runtime.GOARCH)
	}
	prog := filter(arch)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("seccomp: %w (needs root)", e)
	}
	return nil
}

// filter is the BPF program over struct seccomp_data: nr at offset 0, arch at 4, the low 32
// bits of args[0] at 16 (little-endian), where clone(2) and unshare(2) take their flags.
func filter(arch uint32) []unix.SockFilter {
	const (
		ld    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		allow = unix.SECCOMP_RET_ALLOW
		errno = unix.SECCOMP_RET_ERRNO
	)
	return []unix.SockFilter{
		/* 0 */ {Code: ld, K: 4},
		/* 1 */ {Code: jeq, K: arch, Jt: 0, Jf: 8}, // another ABI: allow (10)
		/* 2 */ {Code: ld, K: 0},
		/* 3 */ {Code: jeq, K: unix.SYS_CLONE3, Jt: 7}, // ENOSYS (11)
		/* 4 */ {Code: jeq, K: unix.SYS_UNSHARE, Jt: 2}, // check flags (7)
		/* 5 */ {Code: jeq, K: unix.SYS_CLONE, Jt: 1}, // check flags (7)
		/* 6 */ {Code: ret, K: allow},
		/* 7 */ {Code: ld, K: 16},
		/* 8 */ {Code: jset, K: unix.CLONE_NEWUSER, Jt: 3}, // EPERM (12)
		/* 9 */ {Code: ret, K: allow},
		/* 10 */ {Code: ret, K: allow},
		/* 11 */ {Code: ret, K: errno | uint32(unix.ENOSYS)},
		/* 12 */ {Code: ret, K: errno | uint32(unix.EPERM)},
	}
}
