package cli

import (
	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

func newRunCmd(g *Globals) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [ARGS...]",
		Short: "Run an image's default program",
		Long: `Run the image's entrypoint and command (ARGS replace the command), or the runscript of an image
made by Apptainer or SingularityCE.`,
		Args: minArgs("IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return launch(cmd.Context(), g, isolation.VerbRun, &o, args[0], args[1:])
		},
	}
	addLaunchFlags(g, cmd, &o)
	return cmd
}
