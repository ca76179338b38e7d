package imagecli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/fetch"
)

// refFlags are the options of every verb that reaches a reference.
type refFlags struct {
	insecure bool
	authFile string
	cacheDir string
}

func (r *refFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&r.insecure, "insecure", false, "allow a registry or server over plain HTTP or with an unverified certificate")
	f.BoolVar(&r.insecure, "no-https", false, "same as --insecure (Apptainer's name)")
	f.StringVar(&r.authFile, "authfile", "", "registry credentials file (default: the containers and docker auth files)")
	f.StringVar(&r.cacheDir, "cache-dir", "", "the image cache (default: $HPCCTL_CACHEDIR, cache_dir in hpcctl.conf, ~/.cache/hpcctl)")
	_ = f.MarkHidden("cache-dir") // hpcctl passes it; users set $HPCCTL_CACHEDIR
}

func (r *refFlags) options(g *cli.Globals) (fetch.Options, error) {
	dir := r.cacheDir
	if dir == "" {
		var err error
		if dir, err = cli.CacheDir(""); err != nil {
			return fetch.Options{}, err
		}
	}
	return fetch.Options{CacheDir: dir, Insecure: r.insecure, AuthFile: r.authFile, Version: cli.Version, Logger: g.Logger, Progress: g.Stderr}, nil
}

// newCacheRefCmd is what hpcctl runs for an IMAGE given by reference: it brings the reference into
// the cache and prints the SIF's path.
func newCacheRefCmd(g *cli.Globals) *cobra.Command {
	var r refFlags
	cmd := &cobra.Command{
		Use:    "cache-ref [flags] REF",
		Short:  "Bring an image reference into the cache and print its SIF's path (run by hpcctl)",
		Hidden: true,
		Args:   cli.ExactArgs(1, "a REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := r.options(g)
			if err != nil {
				return err
			}
			res, err := fetch.Fetch(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, res.SIF)
			return nil
		},
	}
	r.add(cmd)
	return cmd
}

func newPullCmd(g *cli.Globals) *cobra.Command {
	var r refFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "pull [flags] [IMAGE.sif] REF",
		Short: cli.ImageShort("pull"),
		Long: `Bring REF into the image cache, once per digest, and copy it to IMAGE.sif (default: NAME_TAG.sif
in the current directory). REF is docker://, oras://, https://, oci:, oci-archive: or
docker-archive:. A tag is always asked of the registry anew; what it names is fetched or built
only when the cache lacks it.`,
		Example: `  hpcctl pull --no-https docker://127.0.0.1:5000/lab/python:3.12
  hpcctl pull tool.sif oras://127.0.0.1:5000/lab/tool:1.0 --no-https`,
		Args: pullArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, out := args[len(args)-1], ""
			if len(args) == 2 {
				out = args[0]
			}
			return runPull(cmd, g, &r, ref, out, force)
		},
	}
	r.add(cmd)
	cmd.Flags().BoolVarP(&force, "force", "F", false, "replace IMAGE.sif if it exists")
	return cmd
}

func runPull(cmd *cobra.Command, g *cli.Globals, r *refFlags, ref, out string, force bool) error {
	if out == "" {
		out = defaultPullName(ref)
	}
	if _, err := os.Lstat(out); err == nil && !force {
		return fmt.Errorf("%s exists: pass --force to replace it, or name another file", out)
	}
	opts, err := r.options(g)
	if err != nil {
		return err
	}
	res, err := fetch.Fetch(cmd.Context(), ref, opts)
	if err != nil {
		return err
	}
	if err := copyFile(res.SIF, out); err != nil {
		return err
	}
	if !g.Quiet {
		fmt.Fprintf(g.Stdout, "pulled %s as %s (%s)\n", ref, out, res.Digest)
	}
	return nil
}

// defaultPullName is Apptainer's: the last part of the name and the tag, as NAME_TAG.sif; a URL's
// own file name.
func defaultPullName(ref string) string {
	rest := ref
	if _, r, ok := strings.Cut(ref, "://"); ok {
		rest = r
	} else if _, r, ok := strings.Cut(ref, ":"); ok {
		rest = r
	}
	rest = strings.SplitN(strings.SplitN(rest, "?", 2)[0], "#", 2)[0]
	base := filepath.Base(strings.Split(rest, "@")[0])
	if strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://") {
		return strings.TrimSuffix(base, ".sif") + ".sif"
	}
	name, tag, ok := strings.Cut(base, ":")
	if !ok {
		tag = "latest"
	}
	return strings.TrimSuffix(name, ".tar") + "_" + tag + ".sif"
}

// copyFile copies the cached SIF to out under a temporary name and renames it: out appears whole
// or not at all.
func copyFile(src, out string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("read the cached image: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

func newPushCmd(g *cli.Globals) *cobra.Command {
	var r refFlags
	cmd := &cobra.Command{
		Use:   "push [flags] IMAGE.sif oras://REF",
		Short: cli.ImageShort("push"),
		Long: `Push a SIF to an OCI registry as an ORAS artifact, with the media types Apptainer and
SingularityCE use: 'apptainer pull oras://REF' reads it, and so does 'hpcctl pull'.`,
		Example: `  hpcctl push tool.sif oras://127.0.0.1:5000/lab/tool:1.0 --no-https`,
		Args:    cli.ExactArgs(2, "an IMAGE.sif and an oras://REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[1], "oras://") {
				return cli.Usage(fmt.Errorf("push %s: the destination must be oras://HOST/REPO[:TAG]", args[1]))
			}
			opts, err := r.options(g)
			if err != nil {
				return err
			}
			d, err := fetch.Push(cmd.Context(), args[0], args[1], opts)
			if err != nil {
				return err
			}
			if !g.Quiet {
				fmt.Fprintf(g.Stdout, "pushed %s to %s (%s)\n", args[0], args[1], d)
			}
			return nil
		},
	}
	r.add(cmd)
	return cmd
}

// pullArgs takes a REF, or an output IMAGE.sif and a REF.
func pullArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 1 || len(args) == 2 {
		return nil
	}
	return cli.Usage(fmt.Errorf("pull needs a REF, or an output IMAGE.sif and a REF, got %d arguments (see '%s --help')", len(args), cmd.CommandPath()))
}
