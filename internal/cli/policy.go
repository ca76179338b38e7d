package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hpcctl/hpcctl/internal/config"
)

// CheckPolicyVerb is the companion's hidden command that checks an image, open as descriptor 3,
// against a signature policy given as flags. hpcctl itself cannot: the signing libraries would
// double the start-up time of every job, including the jobs of sites without a policy.
const CheckPolicyVerb = "check-policy"

// PolicyArgs are the arguments of the companion's CheckPolicyVerb for checking image (the name
// its errors give) against the [signature] table.
func PolicyArgs(sig config.Signature, image string) []string {
	return sig.CompanionArgs(image)
}

// policyEmpty reports whether the site sets no signature policy (the default): then no image is
// checked and no companion started.
func policyEmpty(sig config.Signature) bool {
	return sig.PolicyEmpty()
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
func checkPolicy(ctx context.Context, g *Globals, sig config.Signature, f *os.File, kind imageKind) error {
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
	if sig.VerifyData && kind != kindSIF {
		return fmt.Errorf("image %s is not a SIF image: --verify-data (or verify_data in hpcctl.conf) checks a signed SIF's data against its signature; run a signed SIF", f.Name())
	}
	err := runCompanion(ctx, g, CheckPolicyVerb, PolicyArgs(sig, f.Name()), f)
	var refused companionFailed
	if err != nil && !errors.As(err, &refused) {
		return fmt.Errorf("image %s: the site's signature policy cannot be checked: %w", f.Name(), err)
	}
	return err
}
