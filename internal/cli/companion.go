package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	argv := []string{"hpcctl"}
	for flag, on := range map[string]bool{"--verbose": g.Verbose, "--debug": g.Debug, "--quiet": g.Quiet} {
		if on {
			argv = append(argv, flag)
		}
	}
	argv = append(append(argv, verb), args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}

// companionPath finds hpcctl-image beside this binary, in ../libexec/hpcctl, or on PATH (not
// when setuid).
func companionPath() (string, error) {
	self, err := os.Executable()
	if err == nil {
		dir := filepath.Dir(self)
		for _, p := range []string{filepath.Join(dir, Companion), filepath.Join(dir, "..", "libexec", "hpcctl", Companion)} {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
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
