package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	gosif "github.com/sylabs/sif/v2/pkg/sif"

	"github.com/hpcctl/hpcctl/internal/sif"
)

// newSIFCmd groups low-level SIF introspection for debugging.
func newSIFCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sif",
		Short: "Low-level SIF introspection (list, dump)",
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json] IMAGE.sif",
		Short: "List the data objects of a SIF",
		Args:  ExactArgs(1, "one IMAGE.sif"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := sif.Describe(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				e := json.NewEncoder(g.Stdout)
				e.SetIndent("", "  ")
				return e.Encode(struct {
					Objects []sif.Object `json:"objects"`
				}{append([]sif.Object{}, d.Objects...)})
			}
			return printObjects(g.Stdout, d.Objects)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.AddCommand(list, &cobra.Command{
		Use:   "dump IMAGE.sif ID",
		Short: "Write the data of one object to standard output",
		Args:  ExactArgs(2, "an IMAGE.sif and an object ID (see 'hpcctl sif list')"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				return UsageError{Err: fmt.Errorf("object ID %q is not a number (see 'hpcctl sif list')", args[1])}
			}
			return dumpObject(g, args[0], uint32(id))
		},
	})
	return cmd
}

func dumpObject(g *Globals, path string, id uint32) error {
	f, err := sif.LoadPath(path, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.UnloadContainer() //nolint:errcheck // opened read-only: nothing to flush
	d, err := f.GetDescriptor(gosif.WithID(id))
	if err != nil {
		return fmt.Errorf("%s has no object %d (see 'hpcctl sif list %s')", path, id, path)
	}
	if _, err := io.Copy(g.Stdout, d.GetReader()); err != nil {
		return fmt.Errorf("dump object %d of %s: %w", id, path, err)
	}
	return nil
}
