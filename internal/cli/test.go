package cli

import (
	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

func newTestCmd(g *Globals) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "test [flags] IMAGE [ARGS...]",
		Short: "Run an image's test script",
		Long:  `Run the test script the image defines (/.singularity.d/test); an image without one passes.`,
		Args:  minArgs("IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return launch(cmd.Context(), g, isolation.VerbTest, &o, args[0], args[1:])
		},
	}
	addLaunchFlags(g, cmd, &o)
	return cmd
}
