package cli

import (
	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

func newShellCmd(g *Globals) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "shell [flags] IMAGE [SHELL-ARGS...]",
		Short: "Start an interactive shell in a container",
		Long:  `Start /bin/bash, or /bin/sh when the image has no bash, on your terminal inside IMAGE.`,
		Args:  minArgs("IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return launch(cmd.Context(), g, isolation.VerbShell, &o, args[0], args[1:])
		},
	}
	addLaunchFlags(g, cmd, &o)
	return cmd
}
