package imagecli

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/gpu/cdi"
)

// newCDICmd is the hidden command hpcctl runs for --device: it resolves CDI device names against
// the specs in the given directories and prints what they bind as JSON (gpu.Found), or fails
// with one line naming the device.
func newCDICmd(g *cli.Globals) *cobra.Command {
	var dirs []string
	cmd := &cobra.Command{
		Use:    cli.CDIVerb + " [--cdi-dir DIR]... -- NAME...",
		Short:  "Resolve CDI device names for --device (run by hpcctl)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := cdi.Resolve(dirs, args)
			if err != nil {
				return err
			}
			return json.NewEncoder(g.Stdout).Encode(f)
		},
	}
	cmd.Flags().StringArrayVar(&dirs, "cdi-dir", nil, "a `dir`ectory of CDI specs, lowest priority first (repeatable)")
	return cmd
}
