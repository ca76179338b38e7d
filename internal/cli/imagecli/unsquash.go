package imagecli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// newUnsquashCmd is the hidden command behind `hpcctl exec --unsquash`: it extracts the squashfs
// partition of the image hpcctl opened (descriptor 3) with hpcctl's own reader.
func newUnsquashCmd(g *cli.Globals) *cobra.Command {
	var offset, size int64
	cmd := &cobra.Command{
		Use:    cli.UnsquashVerb + " --offset N --size N IMAGE DEST 3<IMAGE",
		Short:  "Extract the squashfs partition of the image open as descriptor 3 into DEST (run by hpcctl)",
		Hidden: true,
		Args:   cli.ExactArgs(2, "the IMAGE name and the empty DEST directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := inheritedImage(cli.UnsquashVerb, args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return extract(g, f, offset, size, args[1])
		},
	}
	cmd.Flags().Int64Var(&offset, "offset", 0, "where the squashfs starts in the image, in bytes")
	cmd.Flags().Int64Var(&size, "size", 0, "the squashfs's size in bytes (0: to the end of the image)")
	return cmd
}

func extract(g *cli.Globals, f *os.File, offset, size int64, dest string) error {
	if size == 0 {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		size = st.Size() - offset
	}
	if offset < 0 || size <= 0 {
		return cli.Usage(fmt.Errorf("%s: --offset %d --size %d do not locate a partition", cli.UnsquashVerb, offset, size))
	}
	r, err := squashfs.Open(io.NewSectionReader(f, offset, size), size)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	// Set-id bits are kept so the image's programs see the modes the image says: extracted by a
	// plain user the files are that user's own, so the bits grant nothing.
	opts := squashfs.ExtractOptions{KeepSetuid: true, Xattrs: os.Geteuid() == 0, Logger: g.Logger}
	if err := squashfs.Extract(r, dest, opts); err != nil {
		return fmt.Errorf("extract %s: %w", f.Name(), err)
	}
	return nil
}
