// Command hpcctl builds signed single-file SIF images from OCI images and runs them on HPC clusters.
package main

import (
	"os"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/launcher/child"
)

func main() {
	// The container's setup stage is this same binary re-executed; route it before the CLI is
	// built, because every job pays for this path.
	if len(os.Args) > 1 && os.Args[1] == child.SetupArg {
		os.Exit(child.Main())
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.CommonVerbs, cli.LaunchVerbs, cli.CompanionVerbs))
}
