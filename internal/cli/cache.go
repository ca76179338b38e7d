package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/refcache"
)

func newCacheCmd(g *Globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List and clean the image cache (SIFs made from references, and the blobs builds share)",
		Long: `The image cache holds the SIF made from each image reference (docker://, oras://, https://,
oci-archive:, ...) and the OCI blobs builds fetch, so that nothing is downloaded twice. It is
$HPCCTL_CACHEDIR, else a directory per user under cache_dir in hpcctl.conf, else ~/.cache/hpcctl.`,
		Args: ExactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&configFile, "config", "", "read the settings from this `file` instead of /etc/hpcctl/hpcctl.conf (also $"+configEnv+")")
	cmd.AddCommand(newCacheListCmd(g, &configFile), newCacheCleanCmd(g, &configFile))
	return cmd
}

func newCacheListCmd(g *Globals, configFile *string) *cobra.Command {
	var asJSON bool
	var types []string
	cmd := &cobra.Command{
		Use:   "list [--json] [--type sif|blob]",
		Short: "List the cache's SIFs and blobs: size, age, and what refers to each",
		Args:  ExactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkCacheTypes(types); err != nil {
				return err
			}
			root, err := CacheDir(*configFile)
			if err != nil {
				return err
			}
			entries, err := refcache.List(root)
			if err != nil {
				return err
			}
			entries = filterTypes(entries, types)
			if asJSON {
				if entries == nil {
					entries = []refcache.Entry{}
				}
				enc := json.NewEncoder(g.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Dir     string           `json:"dir"`
					Entries []refcache.Entry `json:"entries"`
				}{root, entries})
			}
			return printCache(g.Stdout, root, entries, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.Flags().StringSliceVarP(&types, "type", "T", nil, "list only these entry types: sif, blob")
	return cmd
}

func newCacheCleanCmd(g *Globals, configFile *string) *cobra.Command {
	var days int
	var types []string
	cmd := &cobra.Command{
		Use:   "clean [--days N] [--type sif|blob]",
		Short: "Remove cache entries (all, or those older than N days); waits for running pulls and builds",
		Args:  ExactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkCacheTypes(types); err != nil {
				return err
			}
			if days < 0 {
				return Usage(fmt.Errorf("--days %d: want 0 (everything) or more", days))
			}
			root, err := CacheDir(*configFile)
			if err != nil {
				return err
			}
			release, err := refcache.Exclusive(cmd.Context(), root, func() {
				if !g.Quiet {
					fmt.Fprintln(g.Stderr, "hpcctl: waiting for a pull, build or start using the cache to finish")
				}
			})
			if err != nil {
				return err
			}
			defer release()
			removed, err := refcache.Clean(root, refcache.CleanOptions{OlderThan: time.Duration(days) * 24 * time.Hour, Types: types, Now: time.Now()})
			var size int64
			for _, e := range removed {
				size += e.Size
			}
			if !g.Quiet {
				fmt.Fprintf(g.Stdout, "removed %d entries (%s) from %s\n", len(removed), humanBytes(size), root)
			}
			if n := sweepBuilds(cmd.Context(), g); n > 0 && !g.Quiet {
				fmt.Fprintf(g.Stdout, "removed %d work directories of killed builds\n", n)
			}
			return err
		},
	}
	cmd.Flags().IntVarP(&days, "days", "D", 0, "remove only entries older than N days")
	cmd.Flags().StringSliceVarP(&types, "type", "T", nil, "remove only these entry types: sif, blob")
	return cmd
}

func checkCacheTypes(types []string) error {
	for _, t := range types {
		if t != refcache.TypeSIF && t != refcache.TypeBlob {
			return Usage(fmt.Errorf("--type %q: want sif or blob", t))
		}
	}
	return nil
}

func filterTypes(entries []refcache.Entry, types []string) []refcache.Entry {
	if len(types) == 0 {
		return entries
	}
	var out []refcache.Entry
	for _, e := range entries {
		for _, t := range types {
			if e.Type == t {
				out = append(out, e)
			}
		}
	}
	return out
}

func printCache(w io.Writer, root string, entries []refcache.Entry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TYPE\tSIZE\tAGE\tNAME\tUSED BY\n")
	var total int64
	for _, e := range entries {
		total += e.Size
		used := strings.Join(e.UsedBy, ", ")
		if used == "" {
			used = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Type, humanBytes(e.Size), humanAge(now.Sub(e.Modified)), e.Name, used)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d entries, %s in %s\n", len(entries), humanBytes(total), root)
	return err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Arguments of hpcctl-image that sweep killed recipe builds' work directories and print how many
// went (internal/build.StageArg and SweepAllArg; e2e TestDeffileKilled runs it).
var buildSweepArgs = []string{"__build-stage", "--sweep"}

// sweepBuilds removes what killed recipe builds left in $TMPDIR, through hpcctl-image: files a
// plain user's build gave to subordinate IDs can only be removed from a user namespace mapping
// them, which the build code sets up. It returns how many work directories went.
func sweepBuilds(ctx context.Context, g *Globals) int {
	path, err := companionPath()
	if err != nil {
		g.Logger.Debug("no sweep of killed builds", "err", err)
		return 0
	}
	cmd := exec.CommandContext(ctx, path, buildSweepArgs...)
	cmd.Stderr = g.Stderr
	out, err := cmd.Output()
	n, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil {
		g.Logger.Warn("sweep of killed builds' work directories", "err", errors.Join(err, perr))
		return 0
	}
	return n
}
