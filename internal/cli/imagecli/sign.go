package imagecli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/sign"
)

type signOptions struct {
	keys     []string // key files or key names in the key directory
	pgp      bool
	keyring  string // OpenPGP secret keyring instead of the key directory
	pgpKey   string // which OpenPGP key
	groupIDs []uint
	keyDir   keyOptions
}

func newSignCmd(g *cli.Globals) *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign (--key KEY | --pgp) IMAGE.sif",
		Short: cli.ImageShort("sign"),
		Long: `Sign adds a signature object covering every object group of the image (the system
partition's group among them). --key takes a private key file or the name of a key made with
'hpcctl key newpair'; several --key flags share one signature. --pgp signs with your OpenPGP key.
Signing is deterministic with ed25519 keys (the time comes from SOURCE_DATE_EPOCH or the image),
so reproducible builds stay reproducible; ECDSA and OpenPGP signatures differ each time.
A passphrase-protected key is unlocked from the terminal or $HPCCTL_KEY_PASSPHRASE.`,
		Args: cli.ExactArgs(1, "an IMAGE.sif"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSign(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.keys, "key", "k", nil, "private key FILE, or NAME of a key in the key directory (repeatable)")
	f.BoolVar(&o.pgp, "pgp", false, "sign with an OpenPGP key")
	f.StringVar(&o.keyring, "keyring", "", "OpenPGP secret keyring FILE for --pgp (default: the key directory)")
	f.StringVar(&o.pgpKey, "pgp-key", "", "which OpenPGP key: name, fingerprint or user ID")
	f.UintSliceVar(&o.groupIDs, "group-id", nil, "sign only this object group (repeatable)")
	f.StringVar(&o.keyDir.dir, "keys-dir", "", "key directory (default $XDG_CONFIG_HOME/hpcctl/keys)")
	return cmd
}

func runSign(cmd *cobra.Command, g *cli.Globals, o *signOptions, image string) error {
	if len(o.keys) == 0 && !o.pgp {
		return cli.Usage(errors.New("sign needs --key KEY or --pgp (see 'hpcctl sign --help')"))
	}
	opts, err := signOptionsFromEnv(o)
	if err != nil {
		return err
	}
	keys, err := loadSigningKeys(g, o)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if err := sign.SignFile(cmd.Context(), image, keys, opts); err != nil {
		return err
	}
	for _, k := range keys {
		fmt.Fprintf(g.Stdout, "Signed %s with %s key %s (%s)\n", image, k.Type, k.Name, k.Fingerprint)
	}
	return nil
}

// signOptionsFromEnv takes the signature time from SOURCE_DATE_EPOCH, as reproducible builds do.
func signOptionsFromEnv(o *signOptions) (sign.SignOptions, error) {
	var opts sign.SignOptions
	for _, id := range o.groupIDs {
		opts.GroupIDs = append(opts.GroupIDs, uint32(id))
	}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return opts, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds since 1970: fix or unset it", v)
		}
		opts.Time = time.Unix(sec, 0)
	}
	return opts, nil
}

func loadSigningKeys(g *cli.Globals, o *signOptions) ([]*sign.SigningKey, error) {
	var keys []*sign.SigningKey
	var store *sign.Store
	openStore := func() (*sign.Store, error) {
		if store != nil {
			return store, nil
		}
		var err error
		store, err = o.keyDir.store()
		return store, err
	}
	for _, k := range o.keys {
		key, err := loadOneKey(g, k, openStore)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if o.pgp {
		key, err := loadPGPKey(g, o, openStore)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func loadOneKey(g *cli.Globals, k string, openStore func() (*sign.Store, error)) (*sign.SigningKey, error) {
	if _, err := os.Stat(k); err == nil {
		return sign.LoadSigningKey(k, "", passphrase(g, k))
	}
	s, err := openStore()
	if err != nil {
		return nil, err
	}
	return s.SigningKey(k, passphrase(g, "key "+k))
}

func loadPGPKey(g *cli.Globals, o *signOptions, openStore func() (*sign.Store, error)) (*sign.SigningKey, error) {
	if o.keyring != "" {
		return sign.LoadSigningKey(o.keyring, o.pgpKey, passphrase(g, "OpenPGP key in "+o.keyring))
	}
	s, err := openStore()
	if err != nil {
		return nil, err
	}
	return s.DefaultPGPKey(o.pgpKey, passphrase(g, "OpenPGP key"))
}
