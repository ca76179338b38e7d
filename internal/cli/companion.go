package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Companion is the binary that holds the image-side verbs (build, sign, verify, key). They need
// go.podman.io/image and the signing libraries, whose package initialisation costs every process
// that links them about 10 ms; hpcctl itself, started twice by every job, stays free of them.
const Companion = "hpcctl-image"

// ImageVerb is one command of the companion, with the line of help both binaries show.
type ImageVerb struct{ Name, Short string }

// ImageVerbList lists the companion's commands.
func ImageVerbList() []ImageVerb {
	return []ImageVerb{
		{"build", "Build a SIF image from an OCI image or a directory"},
		{"key", "Make, list, import and export signing keys"},
		{"pull", "Fetch an image by reference (docker://, oras://, https://, ...) into the cache and copy it out as a SIF"},
		{"push", "Push a SIF to an OCI registry as an ORAS artifact (oras://), as Apptainer does"},
		{"sign", "Sign a SIF image (DSSE with PEM keys, or OpenPGP); Apptainer and SingularityCE verify it"},
		{"verify", "Verify an image's signatures: who signed it, what they cover, whether it changed since"},
	}
}

// ImageShort returns the help line of the named companion verb.
func ImageShort(name string) string {
	for _, v := range ImageVerbList() {
		if v.Name == name {
			return v.Short
		}
	}
	return ""
}

// CompanionVerbs are hpcctl's entries for the companion's commands: each hands its whole command
// line over to hpcctl-image, which replaces this process.
func CompanionVerbs(g *Globals) []*cobra.Command {
	var cmds []*cobra.Command
	for _, v := range ImageVerbList() {
		cmds = append(cmds, &cobra.Command{
			Use:                v.Name,
			Short:              v.Short,
			Long:               v.Short + ".\n\nhpcctl runs this command from " + Companion + ", installed beside it; see 'hpcctl " + v.Name + " --help'.",
			DisableFlagParsing: true,
			ValidArgsFunction:  completeCompanion(v.Name),
			RunE: func(cmd *cobra.Command, args []string) error {
				return execCompanion(g, v.Name, args)
			},
		})
	}
	return cmds
}

// execCompanion replaces this process with hpcctl-image, passing on the global flags given
// before the verb.
func execCompanion(g *Globals, verb string, args []string) error {
	path, err := companionPath()
	if err != nil {
		return err
	}
	if err := syscall.Exec(path, companionArgv(g, verb, args), os.Environ()); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}

// companionArgv is the companion's command line for verb: the global flags given to hpcctl, the
// verb and its arguments.
func companionArgv(g *Globals, verb string, args []string) []string {
	argv := []string{"hpcctl"}
	for _, f := range []struct {
		flag string
		on   bool
	}{{"--verbose", g.Verbose}, {"--debug", g.Debug}, {"--quiet", g.Quiet}} {
		if f.on {
			argv = append(argv, f.flag)
		}
	}
	return append(append(argv, verb), args...)
}

// runCompanion runs one of the companion's hidden commands on the open image (its descriptor 3,
// then any files to inherit, from 4 on)
// and waits for it; it is killed when ctx is cancelled (SIGINT, SIGTERM). The command depends on
// its arguments and the image only, never on the user's environment (in setuid mode it may run
// with privilege). What it prints goes to hpcctl's stderr, but for its last line on failure, which
// becomes the error.
func runCompanion(ctx context.Context, g *Globals, verb string, args []string, image *os.File, inherit ...*os.File) error {
	return companionRun(ctx, g, verb, args, nil, append([]*os.File{image}, inherit...))
}

// companionOutput runs a hidden companion command that is given no descriptor and answers on its
// standard output, and returns that answer.
func companionOutput(ctx context.Context, g *Globals, verb string, args []string) ([]byte, error) {
	var out bytes.Buffer
	err := companionRun(ctx, g, verb, args, &out, nil)
	return out.Bytes(), err
}

// companionRun runs the companion's verb with files as its descriptors 3, 4, ..., and an empty
// environment; stdout, when not nil, takes its standard output.
func companionRun(ctx context.Context, g *Globals, verb string, args []string, stdout io.Writer, files []*os.File) error {
	path, err := companionPath()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Args, cmd.Env, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = companionArgv(g, verb, args), []string{}, stdout, &stderr, files
	// Run first: the arguments of a call are evaluated in order, and stderr is only full after it.
	runErr := cmd.Run()
	return companionResult(g, path, verb, stderr.String(), runErr)
}

// companionResult prints what a companion command wrote to stderr and returns its error: on
// failure its last line, the command's own one-line report, becomes the error.
func companionResult(g *Globals, path, verb, stderr string, err error) error {
	msg := strings.TrimSpace(stderr)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if msg != "" {
			fmt.Fprintln(g.Stderr, msg)
		}
		if err != nil {
			return fmt.Errorf("run %s %s: %w", path, verb, err)
		}
		return nil
	}
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		fmt.Fprintln(g.Stderr, msg[:i])
		msg = msg[i+1:]
	}
	if msg = strings.TrimPrefix(msg, "hpcctl: "); msg == "" {
		msg = fmt.Sprintf("%s %s failed (%v)", path, verb, err)
	}
	return companionFailed(msg)
}

// companionFailed is a companion command's own one-line report of its failure; other errors from
// runCompanion say that the companion could not be run at all.
type companionFailed string

func (e companionFailed) Error() string { return string(e) }

// companionPath finds hpcctl-image beside this binary, in ../libexec/hpcctl, or on PATH (not
// when setuid).
func companionPath() (string, error) {
	self, err := os.Executable()
	if err == nil {
		dir := filepath.Dir(self)
		for _, p := range []string{filepath.Join(dir, Companion), filepath.Join(dir, "..", "libexec", "hpcctl", Companion)} {
			if st, serr := os.Stat(p); serr == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	if os.Getuid() != os.Geteuid() {
		// Setuid, $PATH is the user's to set: only the installed companion will do.
		return "", fmt.Errorf("this command needs %s beside hpcctl (setuid hpcctl does not search $PATH): install both binaries from the same build", Companion)
	}
	p, err := exec.LookPath(Companion)
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("this command needs %s, which is not beside hpcctl nor on PATH: install both binaries from the same build", Companion)
	}
	return p, err
}
