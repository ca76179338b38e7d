// Command hpcctl-image runs hpcctl's image-side commands (build, sign, verify, key). Users call
// them through hpcctl, which hands the command line over; it lives apart so that the libraries
// these commands need do not slow down the start of every container.
package main

import (
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/hpcctl/hpcctl/internal/build"
	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/cli/imagecli"
	"github.com/hpcctl/hpcctl/internal/session"
	"github.com/hpcctl/hpcctl/internal/sqfuse"
)

func main() {
	// A recipe build's stage (its sections, in the fakeroot namespaces) is this binary
	// re-executed; route it before the CLI is built.
	if len(os.Args) > 1 && os.Args[1] == build.StageArg {
		os.Exit(build.StageMain())
	}
	// A shared image session's holder that serves its image itself (hpcctl links no squashfs
	// reader): internal/session with internal/sqfuse's server.
	if len(os.Args) > 1 && os.Args[1] == session.HolderArg {
		os.Exit(session.HolderMain(os.Args[2:], sqfuse.ServeImage))
	}
	// go.podman.io/image logs warnings through logrus's process-wide logger, in its own format;
	// hpcctl reports what matters through its errors and its -v/-d log instead.
	logrus.SetOutput(io.Discard)
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.CommonVerbs, imagecli.Verbs))
}
