// Command hpcctl builds signed single-file SIF images from OCI images and runs them on HPC clusters.
package main

import (
	"os"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/session"
)

func main() {
	// The container's setup stage is this same binary re-executed; route it before the CLI is
	// built, because every job pays for this path.
	if len(os.Args) > 1 && os.Args[1] == child.SetupArg {
		os.Exit(child.Main())
	}
	// The shared image session's holder (internal/session) is this binary too when it runs
	// squashfuse_ll; hpcctl-image's serves the image itself.
	if len(os.Args) > 1 && os.Args[1] == session.HolderArg {
		os.Exit(session.HolderMain(os.Args[2:], nil))
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.CommonVerbs, cli.LaunchVerbs, cli.CompanionVerbs))
}
