package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/refcache"
	"github.com/hpcctl/hpcctl/internal/sif"
)

func newInspectCmd(g *Globals) *cobra.Command {
	var asJSON bool
	var sections inspectSections
	var ref refOptions
	cmd := &cobra.Command{
		Use:   "inspect [--json] [--labels|--runscript|--environment|--deffile|--all] [--list-apps|--app NAME] IMAGE",
		Short: "Show an image's labels, environment, runscript, source and partitions",
		Args:  ExactArgs(1, "one IMAGE.sif"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sections.refused(args[0]); err != nil {
				return err
			}
			if sections.scif() {
				return inspectApps(cmd.Context(), g, ref, args[0], sections, asJSON)
			}
			path, release, err := inspectPath(cmd.Context(), g, ref, args[0])
			if err != nil {
				return err
			}
			d, err := sif.Describe(path)
			release()
			if err != nil {
				return err
			}
			if sections.any() {
				return printSections(g.Stdout, args[0], d, sections, asJSON)
			}
			if asJSON {
				enc := json.NewEncoder(g.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			return printDescription(g.Stdout, args[0], d)
		},
	}
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print JSON for machines (with a section flag, in Apptainer's shape)")
	addInspectSectionFlags(cmd, &sections)
	addReferenceFlags(cmd.Flags(), &ref)
	return cmd
}

// inspectPath is the SIF to describe: image itself, or the cached SIF of a reference.
func inspectPath(ctx context.Context, g *Globals, ref refOptions, image string) (string, func(), error) {
	if !refcache.IsReference(image) {
		return image, func() {}, nil
	}
	conf, err := loadConfig("")
	if err != nil {
		return "", nil, err
	}
	return fetchReference(ctx, g, ref, conf, image)
}

func printDescription(w io.Writer, path string, d *sif.Description) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Image:\t%s\n", path)
	fmt.Fprintf(tw, "ID:\t%s\n", d.ID)
	fmt.Fprintf(tw, "Arch:\t%s\n", d.Arch)
	fmt.Fprintf(tw, "Created:\t%s\n", d.Created.Format("2006-01-02 15:04:05 MST"))
	if p := d.Provenance; p != nil {
		src := p.Source
		if p.SourceDigest != "" {
			src += " (" + p.SourceDigest + ")"
		}
		fmt.Fprintf(tw, "Source:\t%s\n", src)
		fmt.Fprintf(tw, "Built by:\thpcctl %s, %s level %d, %d KiB blocks\n", p.HpcctlVersion, p.Compression, p.Level, p.BlockSize>>10)
	}
	c, err := d.ImageConfig()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if c != nil {
		fmt.Fprintf(tw, "Runscript:\t%s\n", shellJoin(append(slices.Clone(c.Entrypoint), c.Cmd...)))
		fmt.Fprintf(tw, "WorkingDir:\t%s\n", c.WorkingDir)
		fmt.Fprintf(tw, "User:\t%s\n", c.User)
		fmt.Fprintf(tw, "Environment:\t%s\n", strings.Join(c.Env, "\n\t"))
	}
	if len(d.Labels) > 0 {
		var lines []string
		for _, k := range slices.Sorted(maps.Keys(d.Labels)) {
			lines = append(lines, k+"="+d.Labels[k])
		}
		fmt.Fprintf(tw, "Labels:\t%s\n", strings.Join(lines, "\n\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Objects:")
	return printObjects(w, d.Objects)
}

func printObjects(w io.Writer, objs []sif.Object) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tGROUP\tTYPE\tNAME\tOFFSET\tSIZE\tPARTITION")
	for _, o := range objs {
		part := ""
		if o.PartType != "" {
			part = fmt.Sprintf("%s %s %s", o.FSType, o.PartType, o.Arch)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%d\t%d\t%s\n", o.ID, o.GroupID, o.Type, o.Name, o.Offset, o.Size, part)
	}
	return tw.Flush()
}

// shellJoin quotes words that need it, for display.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		q[i] = w
	}
	return strings.Join(q, " ")
}
