package cli

import (
	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

func newExecCmd(g *Globals) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "exec [flags] IMAGE COMMAND [ARGS...]",
		Short: "Run a command in a container",
		Long: `Run COMMAND from IMAGE (a SIF file or a sandbox directory) as you, with your home, the current
directory, /tmp and the host's network, as if it ran natively. The exit status is the command's.`,
		Args: minArgs("IMAGE", "COMMAND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return launch(cmd.Context(), g, isolation.VerbExec, &o, args[0], args[1:])
		},
	}
	addLaunchFlags(g, cmd, &o)
	return cmd
}
