package imagecli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/sign"
)

// keyOptions are shared by the key subcommands.
type keyOptions struct {
	dir string // key directory; empty means the default
}

func newKeyCmd(g *cli.Globals) *cobra.Command {
	o := &keyOptions{}
	cmd := &cobra.Command{
		Use:   "key",
		Short: cli.ImageShort("key"),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Usage(fmt.Errorf("key needs a subcommand: newpair, list, import or export (see 'hpcctl key --help')"))
		},
	}
	cmd.PersistentFlags().StringVar(&o.dir, "keys-dir", "", "key directory (default $XDG_CONFIG_HOME/hpcctl/keys)")
	cmd.AddCommand(newKeyNewpairCmd(g, o), newKeyListCmd(g, o), newKeyImportCmd(g, o), newKeyExportCmd(g, o))
	return cmd
}

func (o *keyOptions) store() (*sign.Store, error) {
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = sign.DefaultKeyDir(); err != nil {
			return nil, err
		}
	}
	return sign.OpenStore(dir)
}

// readStore is the key directory for reading, never created: verify must work with a read-only
// home. It is nil when the directory does not exist.
func (o *keyOptions) readStore() (*sign.Store, error) {
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = sign.DefaultKeyDir(); err != nil {
			return nil, err
		}
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("key directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("key directory %s is not a directory", dir)
	}
	return &sign.Store{Dir: dir}, nil
}

// passphrase asks for a key's passphrase on the terminal, or takes $HPCCTL_KEY_PASSPHRASE.
func passphrase(g *cli.Globals, what string) sign.PassphraseFunc {
	return sign.PromptPassphrase(what, os.LookupEnv, g.Stdin, g.Stderr)
}

type newpairOptions struct {
	typ, name, uidName, email, comment string
	noPassphrase                       bool
}

func newKeyNewpairCmd(g *cli.Globals, ko *keyOptions) *cobra.Command {
	o := &newpairOptions{}
	cmd := &cobra.Command{
		Use:   "newpair",
		Short: "Make a new key pair (ed25519, ecdsa or pgp); use ed25519 for reproducible signed builds",
		Args:  cli.ExactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNewpair(g, ko, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.typ, "type", "t", "ed25519", "key type: ed25519 (deterministic signatures), ecdsa (P-256) or pgp")
	f.StringVarP(&o.name, "name", "n", "default", "name of the key in the key directory")
	f.StringVar(&o.uidName, "user-name", "", "OpenPGP user ID name (default: the key name)")
	f.StringVar(&o.email, "email", "", "OpenPGP user ID e-mail")
	f.StringVar(&o.comment, "comment", "", "OpenPGP user ID comment")
	f.BoolVar(&o.noPassphrase, "no-passphrase", false, "store the private key unencrypted")
	return cmd
}

func runNewpair(g *cli.Globals, ko *keyOptions, o *newpairOptions) error {
	typ, err := sign.ParseKeyType(o.typ)
	if err != nil {
		return cli.Usage(err)
	}
	s, err := ko.store()
	if err != nil {
		return err
	}
	var pass sign.PassphraseFunc
	if !o.noPassphrase {
		pass = passphrase(g, "new key "+o.name)
	}
	uid := sign.PGPIdentity{Name: o.uidName, Email: o.email, Comment: o.comment}
	if uid.Name == "" {
		uid.Name = o.name
	}
	ki, err := s.Generate(typ, o.name, uid, pass)
	if err != nil {
		return fmt.Errorf("key newpair: %w (or pass --no-passphrase)", err)
	}
	fmt.Fprintf(g.Stdout, "Created %s key %s, fingerprint %s\n  public key:  %s\n  private key: %s\n", ki.Type, ki.Name, ki.Fingerprint, ki.PublicPath, ki.PrivatePath)
	return nil
}

func newKeyListCmd(g *cli.Globals, ko *keyOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List keys with their fingerprints",
		Args:  cli.ExactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := ko.store()
			if err != nil {
				return err
			}
			keys, err := s.List()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(g, keys)
			}
			return printKeys(g, keys)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printKeys(g *cli.Globals, keys []sign.KeyInfo) error {
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPRIVATE\tFINGERPRINT\tIDENTITY")
	for _, k := range keys {
		priv := "no"
		if k.Private {
			priv = "yes"
			if k.Encrypted {
				priv = "yes (passphrase)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, priv, k.Fingerprint, k.Identity)
	}
	return tw.Flush()
}

func writeJSON(g *cli.Globals, v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newKeyImportCmd(g *cli.Globals, ko *keyOptions) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a PEM public or private key, or OpenPGP keys",
		Args:  cli.ExactArgs(1, "a key FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("key import: %w", err)
			}
			s, err := ko.store()
			if err != nil {
				return err
			}
			if name == "" {
				name = keyNameFromFile(args[0])
			}
			keys, err := s.Import(data, name, passphrase(g, args[0]))
			for _, k := range keys {
				fmt.Fprintf(g.Stdout, "Imported %s key %s, fingerprint %s\n", k.Type, k.Name, k.Fingerprint)
			}
			if err != nil {
				return fmt.Errorf("key import %s: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "name to store the key under (default: from the file name)")
	return cmd
}

// keyNameFromFile turns "alice.pub.asc" into "alice".
func keyNameFromFile(path string) string {
	n := filepath.Base(path)
	for {
		ext := filepath.Ext(n)
		switch strings.ToLower(ext) {
		case ".pub", ".pem", ".key", ".asc", ".gpg", ".pgp", ".sec", ".crt":
			n = strings.TrimSuffix(n, ext)
			continue
		}
		return n
	}
}

func newKeyExportCmd(g *cli.Globals, ko *keyOptions) *cobra.Command {
	var secret bool
	var out string
	cmd := &cobra.Command{
		Use:   "export NAME|FINGERPRINT",
		Short: "Print a public key (or, with --secret, the private key as stored)",
		Args:  cli.ExactArgs(1, "a key NAME or FINGERPRINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := ko.store()
			if err != nil {
				return err
			}
			data, err := s.Export(args[0], secret)
			if err != nil {
				return fmt.Errorf("key export: %w", err)
			}
			if out == "" || out == "-" {
				_, err = g.Stdout.Write(data)
				return err
			}
			return writeExport(out, data, secret)
		},
	}
	cmd.Flags().BoolVar(&secret, "secret", false, "export the private key")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE (never replaced) instead of standard output")
	return cmd
}

func writeExport(path string, data []byte, secret bool) error {
	perm := os.FileMode(0o644)
	if secret {
		perm = 0o600
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("key export: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("key export: %w", err)
	}
	return nil
}
