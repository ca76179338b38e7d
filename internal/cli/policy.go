package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/hpcctl/hpcctl/internal/config"
)

// CheckPolicyVerb is the companion's hidden command that checks an image, open as descriptor 3,
// against a signature policy given as flags. hpcctl itself cannot: the signing libraries would
// double the start-up time of every job, including the jobs of sites without a policy.
const CheckPolicyVerb = "check-policy"

// PolicyArgs are the companion's arguments for checking image (the name its errors give) against
// the [signature] table.
func PolicyArgs(sig config.Signature, image string) []string {
	args := []string{CheckPolicyVerb}
	if sig.RequireSigned {
		args = append(args, "--require-signed")
	}
	if sig.TrustedKeysDir != "" {
		args = append(args, "--trusted-keys-dir", sig.TrustedKeysDir)
	}
	for _, p := range sig.AllowedPaths {
		args = append(args, "--allowed-path", p)
	}
	return append(args, "--", image)
}

// policyEmpty reports whether the site sets no signature policy (the default): then no image is
// checked and no companion started.
func policyEmpty(sig config.Signature) bool {
	return !sig.RequireSigned && len(sig.AllowedPaths) == 0
}

// imageKind is what a launch was given, as far as the signature policy cares.
type imageKind int

const (
	kindSIF imageKind = iota
	kindSquashfs
	kindDir
)

// checkPolicy checks the open image f against the site's signature policy, with the companion.
// The caller then runs the same descriptor, so the file checked is the file run.
func checkPolicy(sig config.Signature, f *os.File, kind imageKind) error {
	if policyEmpty(sig) {
		return nil
	}
	if sig.RequireSigned && kind != kindSIF {
		what := "a sandbox directory"
		if kind == kindSquashfs {
			what = "a bare squashfs file"
		}
		return fmt.Errorf("image %s is not a signed SIF (it is %s): the site requires signed images; run a SIF image signed by a key the site trusts", f.Name(), what)
	}
	path, err := companionPath()
	if err != nil {
		return fmt.Errorf("the site's signature policy cannot be checked: %w", err)
	}
	var stderr bytes.Buffer
	cmd := &exec.Cmd{
		Path: path,
		Args: append([]string{Companion}, PolicyArgs(sig, f.Name())...),
		// The check depends on the configuration and the image only, never on the user's
		// environment (in setuid mode it runs with privilege).
		Env:        []string{},
		Stderr:     &stderr,
		ExtraFiles: []*os.File{f},
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		msg = strings.TrimPrefix(msg, "hpcctl: ")
		if msg == "" {
			msg = fmt.Sprintf("image %s refused by site policy: %s %s failed (%v)", f.Name(), path, CheckPolicyVerb, err)
		}
		return errors.New(msg)
	}
	if err != nil {
		return fmt.Errorf("check image %s against the site's signature policy: run %s: %w", f.Name(), path, err)
	}
	return nil
}
