package imagecli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/sign"
)

// imageFD is the descriptor hpcctl passes the open image on (exec.Cmd.ExtraFiles[0]) to the
// hidden commands: the image is checked, extracted and run through the one descriptor.
const imageFD = 3

// newCheckPolicyCmd is the hidden command hpcctl runs before a launch when the site sets a
// signature policy; it prints nothing on success and one line on refusal (exit status 1).
func newCheckPolicyCmd(g *cli.Globals) *cobra.Command {
	p := &sign.Policy{}
	cmd := &cobra.Command{
		Use:    cli.CheckPolicyVerb + " [--require-signed] [--trusted-keys-dir DIR] [--allowed-path DIR]... IMAGE 3<IMAGE",
		Short:  "Check the image open as descriptor 3 against a signature policy (run by hpcctl)",
		Hidden: true,
		Args:   cli.ExactArgs(1, "the IMAGE name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := inheritedImage(cli.CheckPolicyVerb, args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return p.CheckFile(cmd.Context(), f)
		},
	}
	addPolicyFlags(cmd, p)
	return cmd
}

func addPolicyFlags(cmd *cobra.Command, p *sign.Policy) {
	f := cmd.Flags()
	f.BoolVar(&p.RequireSigned, "require-signed", false, "refuse images without a signature by a trusted key")
	f.StringVar(&p.TrustedKeysDir, "trusted-keys-dir", "", "`dir`ectory of the trusted public keys")
	f.StringArrayVar(&p.AllowedPaths, "allowed-path", nil, "refuse images outside this `dir`ectory (repeatable)")
	f.BoolVar(&p.VerifyData, "verify-data", false, "check the image's data against its signature's digests")
}

// inheritedImage is the image descriptor hpcctl passed to verb, named for error messages.
func inheritedImage(verb, name string) (*os.File, error) {
	f := os.NewFile(imageFD, name)
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
		err = fmt.Errorf("it is not a file or directory (%v)", st.Mode().Type())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the image must be open as descriptor %d (hpcctl runs this command): %w", verb, imageFD, err)
	}
	return f, nil
}
