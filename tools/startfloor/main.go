// Command startfloor is the least a Go launcher like hpcctl's can do to start a container, the
// floor that a warm start is measured against (tools/sessionbench): a Go process starts a Go
// child in new user and mount namespaces (vfork; the child's ID maps written after its exec, as
// hpcctl does), and the child execs the program. No image, no mounts, no configuration: what is
// left is two Go runtimes starting, the namespaces and the program's exec.
//
//	startfloor PROGRAM [ARGS...]
//	startfloor -nothing
//
// -nothing exits at once: the start and exit of one Go process, half of the floor.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const childArg = "__startfloor_child__"

func main() {
	if len(os.Args) > 2 && os.Args[1] == childArg {
		// The parent closes stdin once the maps are written.
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck // EOF is the signal
		err := unix.Exec(os.Args[2], os.Args[2:], os.Environ())
		fmt.Fprintln(os.Stderr, "startfloor:", err)
		os.Exit(127)
	}
	if len(os.Args) == 2 && os.Args[1] == "-nothing" {
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: startfloor PROGRAM [ARGS...] | startfloor -nothing")
		os.Exit(2)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "startfloor:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	cmd := exec.Command("/proc/self/exe", append([]string{childArg}, argv...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_VM | unix.CLONE_VFORK,
		AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	dir := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/"
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	for _, m := range [][2]string{{"setgroups", "deny"}, {"uid_map", uid + " " + uid + " 1"}, {"gid_map", gid + " " + gid + " 1"}} {
		if err := os.WriteFile(dir+m[0], []byte(m[1]), 0); err != nil {
			cmd.Process.Kill() //nolint:errcheck // failing anyway
			cmd.Wait()         //nolint:errcheck // reaped
			return fmt.Errorf("map IDs: %w", err)
		}
	}
	w.Close()
	return cmd.Wait()
}
