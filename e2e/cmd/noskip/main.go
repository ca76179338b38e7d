// Command noskip runs `go test -json ...`, prints the tests' ordinary text output, and fails when
// any test was skipped or none ran: in CI every capability is provided, so a skipped end-to-end
// test is a broken machine or a broken probe, never a pass.
//
// Usage: noskip go test -json [flags] packages
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: noskip go test -json [flags] packages")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "noskip: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "noskip: start %s: %v\n", args[0], err)
		return 1
	}
	c := newChecker(stdout)
	readErr := c.read(pipe)
	waitErr := cmd.Wait()
	if readErr != nil {
		fmt.Fprintf(stderr, "noskip: read %s's output: %v\n", args[0], readErr)
		return 1
	}
	verdict := c.summary(stdout)
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		return exit.ExitCode()
	case waitErr != nil:
		fmt.Fprintf(stderr, "noskip: %s: %v\n", args[0], waitErr)
		return 1
	case verdict != nil:
		fmt.Fprintf(stderr, "noskip: %v\n", verdict)
		return 1
	}
	return 0
}
