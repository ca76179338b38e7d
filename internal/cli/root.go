// Package cli is hpcctl's command line: one file per verb; commands fill an options struct and call
// the packages that do the work; exit codes are decided here, in one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is hpcctl's version, set at link time by the Makefile (-X).
var Version = "dev"

// globals are the options every command shares, filled from persistent flags.
type globals struct {
	verbose bool
	debug   bool
	quiet   bool
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	// logger is made once flags are parsed; libraries take it and are quiet without -v.
	logger *slog.Logger
}

// Main runs the command line and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	return exitCode(err, stderr)
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "hpcctl",
		Short:         "Build signed single-file container images and run them on HPC clusters",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.logger = newLogger(g)
		},
		// Without a RunE cobra answers an unknown verb with the help text and status 0.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print what hpcctl does")
	pf.BoolVarP(&g.debug, "debug", "d", false, "print debugging detail")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print errors only")
	root.AddCommand(subcommands(g)...)
	markUsageErrors(root)
	return root
}

// markUsageErrors makes every argument error a usage error (exit status 2, a pointer to --help),
// including cobra's own "unknown command", which it reports as a plain error.
func markUsageErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		var err error
		switch {
		case check != nil:
			err = check(cmd, args)
		case cmd.HasSubCommands() && len(args) > 0:
			err = fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			err = usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
		}
		return err
	}
}

// subcommands lists every verb; each lives in its own file.
func subcommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(g),
		newExecCmd(g),
		newRunCmd(g),
		newShellCmd(g),
		newTestCmd(g),
		newKeyCmd(g),
		newSignCmd(g),
		newVerifyCmd(g),
	}
}

func newLogger(g *globals) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.debug:
		level = slog.LevelDebug
	case g.verbose:
		level = slog.LevelInfo
	case g.quiet:
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// usageError marks a bad command line: exit status 2, as for most Unix tools.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitStatus carries a status to return without printing anything (the program in a container
// exited with it, or a check failed and has already said why).
type ExitStatus struct{ Code int }

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitCode prints err as one line and maps it to a status.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var st ExitStatus
	if errors.As(err, &st) {
		return st.Code
	}
	fmt.Fprintf(stderr, "hpcctl: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
