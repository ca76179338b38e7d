package cli

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// DocTree is the command tree of hpcctl made of the verb sets, for generated documentation (man
// pages, tools/mkman): hpcctl's own commands with the companion's in place of their forwarders,
// so that build, sign and the others show their real flags, and cobra's completion command.
func DocTree(verbs ...Verbs) *cobra.Command {
	g := &Globals{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
	root := newRootCmd(g, verbs)
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true
	return root
}
