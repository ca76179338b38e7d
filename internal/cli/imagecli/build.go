package imagecli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/build"
	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/deffile"
	"github.com/hpcctl/hpcctl/internal/refcache"
	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/sign"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

type buildOptions struct {
	force       bool
	compression string
	level       int
	blockSize   string
	arch        string
	os          string
	variant     string
	insecure    bool
	authFile    string
	labels      []string
	// sign signs the image before it is given its name, with the keys of the sign flags.
	sign     bool
	signWith signOptions
	// Recipe builds: {{ name }} values, %test, the work directory of a failed build.
	buildArgs    []string
	buildArgFile string
	noTest       bool
	keepFailed   bool
	// sandbox writes a directory (the first argument) instead of a SIF.
	sandbox bool
}

func newBuildCmd(g *cli.Globals) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [flags] IMAGE.sif|--sandbox DIR SOURCE",
		Short: cli.ImageShort("build"),
		Long: `Build a read-only, single-file SIF image.

SOURCE is one of:
  docker://REF            an image in a registry (docker://127.0.0.1:5000/lab/tool:1.0)
  oci:DIR[:TAG]           an OCI image layout
  oci-archive:FILE[:TAG]  a tar of an OCI image layout
  docker-archive:FILE     a 'docker save' archive
  DIR                     a root file system directory (sandbox)
  RECIPE.def              an Apptainer definition file (Bootstrap: docker, oci, oci-archive,
                          docker-archive, localimage, scratch); %post runs as root inside the
                          image through a user namespace (your /etc/subuid range), see docs/build.md

Blobs are kept in a content-addressed cache ($HPCCTL_CACHEDIR, default ~/.cache/hpcctl), so a
second build of the same image downloads nothing. The same source digest always gives the same
bytes; set SOURCE_DATE_EPOCH to choose the time recorded in the image.`,
		Example: `  hpcctl build python.sif docker://127.0.0.1:5000/python:3.12 --insecure
  hpcctl build tool.sif oci-archive:tool.tar
  SOURCE_DATE_EPOCH=1700000000 hpcctl build rootfs.sif ./rootfs
  hpcctl build --build-arg version=1.2 tool.sif tool.def
  hpcctl build --sandbox ./rootfs docker://127.0.0.1:5000/debian:12 --insecure`,
		Args: cli.ExactArgs(2, "an output IMAGE.sif and a SOURCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, g, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.force, "force", "F", false, "replace IMAGE.sif if it exists")
	f.StringVar(&o.compression, "compression", "zstd", "squashfs compression: zstd, gzip, xz or lz4")
	f.IntVar(&o.level, "level", 0, "compression level (0: the compressor's default; zstd 3, gzip 9)")
	f.StringVar(&o.blockSize, "block-size", "128K", "squashfs block size, a power of two from 4K to 1M")
	f.StringVar(&o.arch, "arch", "", "architecture to pick from a multi-platform image (default: the host's)")
	f.StringVar(&o.os, "os", "", "operating system to pick from a multi-platform image (default: linux)")
	f.StringVar(&o.variant, "variant", "", "architecture variant to pick (v7, v8, ...)")
	f.BoolVar(&o.insecure, "insecure", false, "allow a registry over plain HTTP or with an unverified certificate")
	f.BoolVar(&o.insecure, "no-https", false, "same as --insecure")
	f.StringVar(&o.authFile, "authfile", "", "registry credentials file (default: the containers and docker auth files)")
	f.StringArrayVar(&o.labels, "label", nil, "add a label KEY=VALUE to the image (repeatable)")
	f.BoolVar(&o.sign, "sign", false, "sign the image before it is written (with --key or --pgp; ed25519 keeps the build reproducible)")
	f.StringArrayVarP(&o.signWith.keys, "key", "k", nil, "with --sign: private key FILE, or NAME of a key in the key directory (repeatable)")
	f.BoolVar(&o.signWith.pgp, "pgp", false, "with --sign: sign with an OpenPGP key")
	f.StringVar(&o.signWith.keyring, "keyring", "", "with --sign --pgp: OpenPGP secret keyring FILE")
	f.StringVar(&o.signWith.pgpKey, "pgp-key", "", "with --sign --pgp: which OpenPGP key")
	f.StringVar(&o.signWith.keyDir.dir, "keys-dir", "", "with --sign: key directory (default $XDG_CONFIG_HOME/hpcctl/keys)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "a recipe's {{ NAME }} value NAME=VALUE (repeatable)")
	f.StringVar(&o.buildArgFile, "build-arg-file", "", "a file of NAME=VALUE lines for a recipe's {{ NAME }}s")
	f.BoolVarP(&o.noTest, "notest", "T", false, "do not run the recipe's %test")
	f.BoolVar(&o.keepFailed, "keep-failed", false, "keep a failed recipe build's work directory, and say where")
	f.BoolVarP(&o.sandbox, "sandbox", "s", false, "write a root file system directory (the first argument) instead of a SIF")
	return cmd
}

func runBuild(cmd *cobra.Command, g *cli.Globals, o *buildOptions, output, source string) error {
	opts, err := o.toBuildOptions(g, output, source)
	if err != nil {
		return err
	}
	if opts.Sign, err = o.signer(g); err != nil {
		return err
	}
	if refcache.IsReference(source) {
		// A cache clean waits for this build instead of removing blobs it is about to read.
		release, lerr := refcache.Use(cmd.Context(), opts.CacheDir)
		if lerr != nil {
			return lerr
		}
		defer release()
	}
	res, err := build.Build(cmd.Context(), opts)
	var se *build.SectionError
	if errors.As(err, &se) && se.Status > 0 {
		// The section's own status is the build's, as Apptainer's; the line says which failed.
		fmt.Fprintf(g.Stderr, "hpcctl: %v; no image was written\n", se)
		return cli.ExitStatus{Code: se.Status}
	}
	if err != nil {
		return err
	}
	if o.sandbox {
		if !g.Quiet {
			fmt.Fprintf(g.Stdout, "built sandbox %s\n", res.Output)
		}
		return nil
	}
	if !g.Quiet {
		fmt.Fprintf(g.Stdout, "built %s (%.1f MB, %d files", res.Output, float64(res.Size)/1e6, res.Squashfs.Inodes)
		if res.SourceDigest != "" {
			fmt.Fprintf(g.Stdout, ", source %s", res.SourceDigest)
		}
		fmt.Fprintln(g.Stdout, ")")
	}
	return nil
}

func (o *buildOptions) toBuildOptions(g *cli.Globals, output, source string) (build.Options, error) {
	comp, err := squashfs.ParseCompression(o.compression)
	if err != nil {
		return build.Options{}, cli.Usage(err)
	}
	bs, err := parseBlockSize(o.blockSize)
	if err != nil {
		return build.Options{}, cli.Usage(fmt.Errorf("--block-size: %w", err))
	}
	if _, err = squashfs.EffectiveLevel(comp, o.level); err != nil {
		return build.Options{}, cli.Usage(fmt.Errorf("--level: %w", err))
	}
	labels, err := parseKeyValues(o.labels, "--label")
	if err != nil {
		return build.Options{}, err
	}
	sde, err := build.ParseSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return build.Options{}, err
	}
	cacheDir, err := cli.CacheDir("")
	if err != nil {
		return build.Options{}, err
	}
	args, err := o.recipeArgs()
	if err != nil {
		return build.Options{}, err
	}
	sandbox := ""
	if o.sandbox {
		if o.sign {
			return build.Options{}, cli.Usage(errors.New("--sign signs a SIF: a --sandbox directory cannot be signed"))
		}
		sandbox, output = output, ""
	}
	return build.Options{
		BuildArgs: args, NoTest: o.noTest, KeepFailed: o.keepFailed, Sandbox: sandbox,
		Source: source, Output: output, Force: o.force,
		Compression: comp, Level: o.level, BlockSize: bs,
		Arch: o.arch, OS: o.os, Variant: o.variant, Insecure: o.insecure, AuthFile: o.authFile,
		CacheDir: cacheDir, SourceDateEpoch: sde, Labels: labels,
		Version: cli.Version, Logger: g.Logger, Progress: g.Stderr,
	}, nil
}

// signer loads the signing keys before anything is fetched (a passphrase is asked at once) and
// returns the step that signs the finished SIF, at the image's own time so that ed25519
// signatures of a reproducible build are reproducible too.
func (o *buildOptions) signer(g *cli.Globals) (func(ctx context.Context, f *os.File, at time.Time) error, error) {
	if !o.sign {
		if len(o.signWith.keys) > 0 || o.signWith.pgp {
			return nil, cli.Usage(errors.New("--key and --pgp sign only with --sign"))
		}
		return nil, nil
	}
	if len(o.signWith.keys) == 0 && !o.signWith.pgp {
		return nil, cli.Usage(errors.New("--sign needs --key KEY or --pgp"))
	}
	keys, err := loadSigningKeys(g, &o.signWith)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return func(ctx context.Context, f *os.File, at time.Time) error {
		fi, err := sif.Load(f)
		if err != nil {
			return err
		}
		if err := sign.SignImage(ctx, fi, keys, sign.SignOptions{Time: at}); err != nil {
			fi.UnloadContainer() //nolint:errcheck // the signing error is the one to report
			return err
		}
		return fi.UnloadContainer()
	}, nil
}

// recipeArgs merges --build-arg-file and --build-arg (which wins), as Apptainer does.
func (o *buildOptions) recipeArgs() (map[string]string, error) {
	args := map[string]string{}
	if o.buildArgFile != "" {
		b, err := os.ReadFile(o.buildArgFile)
		if err != nil {
			return nil, fmt.Errorf("--build-arg-file: %w", err)
		}
		if args, err = deffile.ParseArgFile(o.buildArgFile, b); err != nil {
			return nil, fmt.Errorf("--build-arg-file: %w", err)
		}
	}
	kv, err := parseKeyValues(o.buildArgs, "--build-arg")
	if err != nil {
		return nil, err
	}
	maps.Copy(args, kv)
	return args, nil
}

// parseBlockSize reads a block size and checks it against the format's limits.
func parseBlockSize(s string) (uint32, error) {
	n, err := parseSize(s)
	if err == nil && n <= squashfs.MaxBlockSize && squashfs.CheckBlockSize(uint32(n)) == nil {
		return uint32(n), nil
	}
	return 0, fmt.Errorf("%q is not a squashfs block size: use a power of two from 4K to 1M", s)
}

// parseSize reads sizes like 131072, 128K, 1M.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(strings.ToUpper(s), "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(strings.ToUpper(s), "M"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (use a number with an optional K or M suffix)", s)
	}
	return n * mult, nil
}

// parseKeyValues reads repeated KEY=VALUE flags.
func parseKeyValues(list []string, flag string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cli.Usage(fmt.Errorf("%s %q: use KEY=VALUE", flag, kv))
		}
		m[k] = v
	}
	return m, nil
}
