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
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/launcher"
	"github.com/hpcctl/hpcctl/internal/signals"
)

// Version is hpcctl's version, set at link time by the Makefile (-X).
var Version = "dev"

// Globals are the options every command shares, filled from persistent flags.
type Globals struct {
	Verbose bool
	Debug   bool
	Quiet   bool
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// Logger is made once flags are parsed; libraries take it and are quiet without -v.
	Logger *slog.Logger
	// deferred are the flag definitions of commands that define them only when needed
	// (lazyflags.go).
	deferred map[*cobra.Command]func()
	// args is the command line Main runs, for speculate; early is the setup process it started,
	// and earlyConf the configuration it read for it.
	args      []string
	early     *launcher.Pending
	earlyConf *config.Config
}

// Verbs makes a set of commands sharing g.
type Verbs func(g *Globals) []*cobra.Command

// Main runs the command line made of the verb sets and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, verbs ...Verbs) int {
	g := &Globals{Stdin: stdin, Stdout: stdoutWriter{stdout}, Stderr: stderr, args: args}
	// A speculative setup process that no launch took (a bad flag, an instance) ends with hpcctl.
	defer func() { g.early.Abandon() }()
	root := newCommandTree(g, verbs)
	g.defineFlagsFor(root, args)
	root.SetArgs(args)
	ctx, stop := signalContext()
	defer stop()
	err := root.ExecuteContext(ctx)
	code := exitCode(err, context.Cause(ctx), stderr)
	var st ExitStatus
	if errors.As(err, &st) && st.Signal != 0 {
		stop()
		dieOf(st.Signal)
	}
	return code
}

// Interrupted is why a command's context was cancelled: the user or the batch system sent a signal.
type Interrupted struct{ Signal syscall.Signal }

func (i Interrupted) Error() string { return "interrupted by " + unix.SignalName(i.Signal) }

// signalContext is cancelled, with Interrupted as the cause, by SIGINT or SIGTERM. It also
// catches SIGPIPE, so that a closed stderr (`hpcctl build ... 2>&1 | head -1`) makes writes fail
// instead of killing hpcctl before it removes its temporary files (Go exits on SIGPIPE for fds 1
// and 2 unless the signal is caught). Signals ignored at start (nohup, background jobs) stay
// ignored: catching them would undo that for the program in the container too, while caught
// signals return to their default when the program is executed.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stops := make(chan os.Signal, 1)
	signal.Notify(stops, signals.NotIgnored([]os.Signal{os.Interrupt, syscall.SIGTERM})...)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, signals.NotIgnored([]os.Signal{syscall.SIGPIPE})...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-stops:
			cancel(Interrupted{Signal: s.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(stops)
		signal.Stop(pipes)
		close(done)
		cancel(nil)
	}
}

// newRootCmd is the whole command tree, every flag defined (documentation, tests).
func newRootCmd(g *Globals, verbs []Verbs) *cobra.Command {
	root := newCommandTree(g, verbs)
	g.defineAllFlags()
	return root
}

// newCommandTree is the command tree, with the flags of the launch verbs left to
// Globals.defineFlagsFor or defineAllFlags.
func newCommandTree(g *Globals, verbs []Verbs) *cobra.Command {
	root := &cobra.Command{
		Use:           "hpcctl",
		Short:         "Build signed single-file container images and run them on HPC clusters",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.Logger = newLogger(g)
		},
		// Without a RunE cobra answers an unknown verb with the help text and status 0.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetIn(g.Stdin)
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return UsageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "print what hpcctl does")
	pf.BoolVarP(&g.Debug, "debug", "d", false, "print debugging detail")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "print errors only")
	for _, v := range verbs {
		root.AddCommand(v(g)...)
	}
	markUsageErrors(root)
	return root
}

// markUsageErrors makes every argument error a usage error (a pointer to --help),
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
		var ue UsageError
		if err != nil && !errors.As(err, &ue) {
			err = UsageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
		}
		return err
	}
}

// LaunchVerbs are the commands of the launch path, which every job pays to start: they live in
// the hpcctl binary, kept free of the image and signing libraries (whose package initialisation
// alone doubled the start-up time of a job). Only the binary with these verbs launches, so this
// is where a plain launch's setup process starts, before the rest of the tree (speculate.go).
func LaunchVerbs(g *Globals) []*cobra.Command {
	g.speculate()
	return []*cobra.Command{
		newExecCmd(g),
		newDoctorCmd(g),
		newRunCmd(g),
		newShellCmd(g),
		newTestCmd(g),
		newInspectCmd(g),
		newRunHelpCmd(g),
		newSIFCmd(g),
		newAuditCmd(g),
		newCacheCmd(g),
		newSessionCmd(g),
		newInstanceCmd(g),
	}
}

// CommonVerbs are in both binaries.
func CommonVerbs(g *Globals) []*cobra.Command {
	return []*cobra.Command{newVersionCmd(g)}
}

func newLogger(g *Globals) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.Debug:
		level = slog.LevelDebug
	case g.Verbose:
		level = slog.LevelInfo
	case g.Quiet:
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
}

// stdoutWriter marks a write to a closed pipe on standard output, so that exitCode can tell it
// from a broken pipe anywhere else, which is an error worth reporting.
type stdoutWriter struct{ w io.Writer }

func (s stdoutWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		err = stdoutClosed{err}
	}
	return n, err
}

// stdoutClosed is a write error on standard output because its reader has gone.
type stdoutClosed struct{ err error }

func (e stdoutClosed) Error() string { return "standard output closed: " + e.err.Error() }
func (e stdoutClosed) Unwrap() error { return e.err }

// UsageError marks a bad command line. It exits with FailureStatus like every failure of hpcctl
// itself (issue 15: scripts written for Apptainer tell hpcctl's failures from the program's own
// status by 255); the type remains so that the message points at --help.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// ExactArgs is cobra.ExactArgs with a usage error that names what is missing.
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		if n == 0 {
			return Usage(fmt.Errorf("%s takes no arguments, got %q (see '%s --help')", name, args, cmd.CommandPath()))
		}
		return Usage(fmt.Errorf("%s needs %s, got %d arguments (see '%s --help')", name, what, len(args), cmd.CommandPath()))
	}
}

// Usage marks err as a usage error.
func Usage(err error) error { return UsageError{Err: err} }

// ExitStatus carries a status to return without printing anything (the program in a container
// exited with it, or a check failed and has already said why). Signal, when set, is the signal
// that killed the program: Main then ends hpcctl with that same signal (see dieOf).
type ExitStatus struct {
	Code   int
	Signal syscall.Signal
}

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// exitCode prints err as one line and maps it to a status.
func exitCode(err, cause error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var st ExitStatus
	if errors.As(err, &st) {
		return st.Code
	}
	// `hpcctl inspect x | head`: the reader has what it wanted; say nothing and exit as a
	// program killed by SIGPIPE would (hpcctl catches it, see signalContext).
	var closed stdoutClosed
	if errors.As(err, &closed) {
		return 128 + int(syscall.SIGPIPE)
	}
	// A command stopped by a signal says so and exits as a shell expects (130 for SIGINT).
	var in Interrupted
	if errors.As(cause, &in) {
		fmt.Fprintf(stderr, "hpcctl: %v: stopped, nothing was left behind\n", in)
		return 128 + int(in.Signal)
	}
	fmt.Fprintf(stderr, "hpcctl: %v\n", err)
	return FailureStatus
}

// FailureStatus is the exit status of every failure of hpcctl itself (a bad flag, an image that
// cannot be opened or mounted, a refused signature), as Apptainer's FATAL errors exit: a batch
// script can then tell them from the program's own status, which is passed through as it is.
const FailureStatus = 255
