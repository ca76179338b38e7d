package imagecli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/compat"
	"github.com/hpcctl/hpcctl/internal/sign"
)

type verifyOptions struct {
	keys                     []string // public key files, or key names in the key directory
	certificate, roots, ints string
	pgpKeyrings              []string
	groupIDs                 []uint
	asJSON                   bool
	keyDir                   keyOptions
	// Apptainer's flags: hpcctl only ever uses local keys (--local), and checks every object
	// group by default (--all).
	local, all     bool
	sifIDs         []uint
	legacyInsecure bool
}

func newVerifyCmd(g *cli.Globals) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [--key PUB | --certificate CERT | --pgp-keyring FILE] IMAGE.sif",
		Short: cli.ImageShort("verify"),
		Long: `Verify checks every object group of the image against the keys given (by default, every
public key in your key directory). It fails (exit status 255) on an unsigned image, on a signature
no given key verifies, on an image modified after signing, and on a damaged signature object.
Images signed by Apptainer or SingularityCE verify the same way.`,
		Args: cli.ExactArgs(1, "an IMAGE.sif"),
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			// $APPTAINER_VERIFY_KEY and the like, as Apptainer reads them.
			if _, err := compat.FromEnvWith(cmd.Flags(), compat.EnvLookup(os.Environ()), compat.VerifyVariables); err != nil {
				return cli.Usage(err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.keys, "key", "k", nil, "public key FILE (PEM or OpenPGP), or NAME of a key in the key directory (repeatable)")
	f.StringVar(&o.certificate, "certificate", "", "signer's X.509 certificate (PEM)")
	f.StringVar(&o.roots, "certificate-roots", "", "trusted root CA certificates (PEM; default: the system's)")
	f.StringVar(&o.ints, "certificate-intermediates", "", "intermediate CA certificates (PEM)")
	f.StringArrayVar(&o.pgpKeyrings, "pgp-keyring", nil, "OpenPGP public keyring FILE (repeatable)")
	f.UintSliceVarP(&o.groupIDs, "group-id", "g", nil, "verify only this object group (repeatable)")
	f.BoolVarP(&o.asJSON, "json", "j", false, "print the report as JSON")
	f.BoolVarP(&o.local, "local", "l", false, "use local keys only (hpcctl never fetches keys: always so)")
	f.BoolVarP(&o.all, "all", "a", false, "verify every object group (hpcctl's default without --group-id)")
	f.UintSliceVarP(&o.sifIDs, "sif-id", "i", nil, "refused: hpcctl verifies object groups; give --group-id")
	f.BoolVar(&o.legacyInsecure, "legacy-insecure", false, "refused: legacy (SingularityCE before 3.6) signatures are not supported")
	f.StringVar(&o.keyDir.dir, "keys-dir", "", "key directory (default $XDG_CONFIG_HOME/hpcctl/keys)")
	return cmd
}

func runVerify(cmd *cobra.Command, g *cli.Globals, o *verifyOptions, image string) error {
	switch {
	case len(o.sifIDs) > 0:
		return cli.Usage(fmt.Errorf("verify --sif-id: hpcctl verifies whole object groups; give --group-id (see hpcctl sif list %s)", image))
	case o.legacyInsecure:
		return cli.Usage(fmt.Errorf("verify --legacy-insecure: legacy signatures (SingularityCE before 3.6) are not supported; sign the image again"))
	case o.all && len(o.groupIDs) > 0:
		return cli.Usage(fmt.Errorf("verify --all and --group-id contradict each other: give one"))
	}
	if _, err := os.Stat(image); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	topts, err := trustOptions(o)
	if err != nil {
		return err
	}
	trust, err := sign.LoadTrust(topts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	groups := make([]uint32, 0, len(o.groupIDs))
	for _, id := range o.groupIDs {
		groups = append(groups, uint32(id))
	}
	report, verr := sign.VerifyFile(cmd.Context(), image, trust, groups)
	if o.asJSON {
		if err := writeJSON(g, report); err != nil {
			return err
		}
	} else {
		printReport(g, report)
	}
	return verr
}

// trustOptions turns flags into key material; with none, the user's key directory is trusted.
func trustOptions(o *verifyOptions) (sign.TrustOptions, error) {
	t := sign.TrustOptions{PGPKeyrings: o.pgpKeyrings, Certificate: o.certificate, Roots: o.roots, Intermediates: o.ints}
	if o.certificate == "" && (o.roots != "" || o.ints != "") {
		return t, cli.Usage(fmt.Errorf("--certificate-roots and --certificate-intermediates need --certificate"))
	}
	var store *sign.Store
	for _, k := range o.keys {
		if _, err := os.Stat(k); err == nil {
			t.KeyFiles = append(t.KeyFiles, k)
			continue
		}
		if store == nil {
			var err error
			if store, err = o.keyDir.readStore(); err != nil {
				return t, err
			}
			if store == nil {
				return t, fmt.Errorf("verify: --key %s: not a file, and you have no key directory: give a key file", k)
			}
		}
		ki, err := store.Find(k)
		if err != nil {
			return t, fmt.Errorf("verify: --key %s: not a file, and %w", k, err)
		}
		t.KeyFiles = append(t.KeyFiles, ki.PublicPath)
	}
	if len(o.keys) == 0 && len(o.pgpKeyrings) == 0 && o.certificate == "" {
		s, err := o.keyDir.readStore()
		if err != nil {
			return t, err
		}
		if s == nil {
			return t, errors.New("verify: no keys to verify with: you have no key directory; give --key FILE, or import keys with hpcctl key import")
		}
		t.KeyDirs = []string{s.Dir}
	}
	return t, nil
}

func printReport(g *cli.Globals, r *sign.Report) {
	status := "Verified"
	if !r.Verified {
		status = "NOT verified"
	}
	fmt.Fprintf(g.Stdout, "%s: %s\n", status, r.Image)
	for _, s := range r.Signatures {
		state := "verified"
		if !s.Verified {
			state = "not verified"
		}
		signer := s.Signer
		if signer == "" {
			signer = "unknown signer"
		}
		fmt.Fprintf(g.Stdout, "  signature object %d (%s, object group %d): %s, %s", s.ID, s.Format, s.Group, state, signer)
		if s.Fingerprint != "" {
			fmt.Fprintf(g.Stdout, " [%s %s]", s.KeyType, s.Fingerprint)
		}
		fmt.Fprintln(g.Stdout)
		for _, ob := range s.Objects {
			fmt.Fprintf(g.Stdout, "    object %d: %s %s\n", ob.ID, ob.Type, ob.Name)
		}
	}
}
