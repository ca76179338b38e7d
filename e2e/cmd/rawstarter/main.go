// Command rawstarter plays a hostile hpcctl for the end-to-end tests: it runs the setuid starter
// with a Spec read from a file as it is (no profile, no checks), handing it the image it opened,
// so that the tests can check what the starter itself refuses or changes.
//
//	rawstarter STARTER SPEC.json IMAGE [--pid]
package main

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/launcher/child"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: rawstarter STARTER SPEC.json IMAGE [--pid]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2], os.Args[3], os.Args[4:]))
}

func run(starter, specFile, image string, extra []string) int {
	payload, err := os.ReadFile(specFile)
	if err != nil {
		return fail(err)
	}
	img, err := os.Open(image)
	if err != nil {
		return fail(err)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	exitR, exitW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	cmd := &exec.Cmd{Path: starter, Args: append([]string{"hpcctl-starter"}, extra...), Env: []string{},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles: []*os.File{specR, os.NewFile(uintptr(pair[1]), "socket"), exitW}}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	specR.Close()
	exitW.Close()
	unix.Close(pair[1])
	specW.Write(payload) //nolint:errcheck // the starter's error says why
	specW.Close()
	if err := child.SendFD(pair[0], child.MsgImage, int(img.Fd())); err != nil {
		fmt.Fprintf(os.Stderr, "rawstarter: send the image: %v\n", err)
	}
	status := 0
	for {
		m, err := child.Receive(pair[0])
		if err != nil || m == nil {
			break
		}
		if m.Kind == child.MsgError {
			fmt.Fprintf(os.Stderr, "starter refused: %s\n", m.Text)
			status = 1
		}
	}
	cmd.Wait() //nolint:errcheck // the status says it
	if ws, ok := child.ReadExit(exitR); ok {
		return child.ExitStatus(ws)
	}
	if status == 0 {
		status = cmd.ProcessState.ExitCode()
	}
	return status
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "rawstarter: %v\n", err)
	return 1
}
