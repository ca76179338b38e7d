// Package imagecli holds the image-side commands of hpcctl (build, sign, verify, key), linked into
// the companion binary hpcctl-image so that the launch path stays free of their libraries.
package imagecli

import (
	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
)

// Verbs lists the companion's commands; cli.ImageVerbList names the visible ones for hpcctl
// (TestVerbsMatchImageVerbList fails when they drift apart).
func Verbs(g *cli.Globals) []*cobra.Command {
	return []*cobra.Command{
		newBuildCmd(g),
		newKeyCmd(g),
		newSignCmd(g),
		newVerifyCmd(g),
		newCheckPolicyCmd(g),
		newCDICmd(g),
		newUnsquashCmd(g),
		newPullCmd(g),
		newPushCmd(g),
		newCacheRefCmd(g),
	}
}
