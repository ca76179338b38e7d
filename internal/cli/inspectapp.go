package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/sif"
)

// inspectSections are Apptainer's inspect flags: each asks for one section of the image's
// metadata instead of hpcctl's whole description.
type inspectSections struct {
	labels, runscript, environment, deffile, all bool
	// In the image's file system, which inspect does not open (it reads the SIF's metadata).
	test, helpfile, startscript, listApps bool
	app                                   string
}

func (s *inspectSections) any() bool {
	return s.labels || s.runscript || s.environment || s.deffile || s.all
}

func addInspectSectionFlags(cmd *cobra.Command, s *inspectSections) {
	f := cmd.Flags()
	f.BoolVarP(&s.labels, "labels", "l", false, "show the image's labels")
	f.BoolVarP(&s.runscript, "runscript", "r", false, "show what run runs (the OCI entrypoint and command)")
	f.BoolVarP(&s.environment, "environment", "e", false, "show the image's environment")
	f.BoolVar(&s.deffile, "deffile", false, "show the definition file the image was built from")
	f.BoolVar(&s.all, "all", false, "show every section above")
	f.BoolVarP(&s.test, "test", "t", false, "with --app: show the app's test script (without it, refused: see it with hpcctl exec IMAGE cat /.singularity.d/test)")
	f.BoolVarP(&s.helpfile, "helpfile", "H", false, "with --app: show the app's help (without it, refused: use hpcctl run-help IMAGE)")
	f.BoolVarP(&s.startscript, "startscript", "s", false, "refused: see it with hpcctl exec IMAGE cat /.singularity.d/startscript")
	f.BoolVar(&s.listApps, "list-apps", false, "list the SCIF apps of an Apptainer image")
	f.StringVar(&s.app, "app", "", "show the SCIF app `name`'s sections: its labels, or those -r, -e, -t, -H, --all ask for")
}

// refused says which section flag asks for files inside the image, which inspect does not read
// (but for SCIF apps, which inspectApps shows from inside the image).
func (s *inspectSections) refused(image string) error {
	if s.scif() {
		return nil
	}
	switch {
	case s.test:
		return Usage(fmt.Errorf("inspect --test: the test script is a file inside the image; see it with hpcctl exec %s cat /.singularity.d/test", image))
	case s.helpfile:
		return Usage(fmt.Errorf("inspect --helpfile: see it with hpcctl run-help %s", image))
	case s.startscript:
		return Usage(fmt.Errorf("inspect --startscript: see it with hpcctl exec %s cat /.singularity.d/startscript", image))
	}
	return nil
}

// apptainerInspect is Apptainer's `inspect --json` shape.
type apptainerInspect struct {
	Data struct {
		Attributes struct {
			Labels      *map[string]string `json:"labels,omitempty"` // a pointer: asked-for empty labels show as {}
			Environment map[string]string  `json:"environment,omitempty"`
			Runscript   string             `json:"runscript,omitempty"`
			Deffile     string             `json:"deffile,omitempty"`
		} `json:"attributes"`
	} `json:"data"`
	Type string `json:"type"`
}

// envScript is where Apptainer keeps an image's environment, and where inspect names it.
const envScript = "/.singularity.d/env/90-environment.sh"

// printSections prints the sections asked for, as text or in Apptainer's JSON shape.
func printSections(w io.Writer, image string, d *sif.Description, s inspectSections, asJSON bool) error {
	c, err := d.ImageConfig()
	if err != nil {
		return fmt.Errorf("%s: %w", image, err)
	}
	if c == nil && (s.runscript || s.environment) {
		return fmt.Errorf("%s has no OCI config: its runscript and environment are files inside it; see them with hpcctl exec %s cat /.singularity.d/runscript", image, image)
	}
	var out apptainerInspect
	out.Type = "container"
	a := &out.Data.Attributes
	if s.labels || s.all {
		labels := d.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		a.Labels = &labels
	}
	if c != nil && (s.runscript || s.all) {
		a.Runscript = "#!/bin/sh\n# what hpcctl run executes (arguments replace the command)\n" + shellJoin(append(slices.Clone(c.Entrypoint), c.Cmd...)) + "\n"
	}
	if c != nil && (s.environment || s.all) {
		var b strings.Builder
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "export %s=%s\n", k, quoteValue(v))
		}
		a.Environment = map[string]string{envScript: b.String()}
	}
	if s.deffile || s.all {
		a.Deffile = d.Deffile
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "    ")
		return enc.Encode(out)
	}
	if a.Labels != nil {
		for _, k := range slices.Sorted(maps.Keys(*a.Labels)) {
			fmt.Fprintf(w, "%s: %s\n", k, (*a.Labels)[k])
		}
	}
	for _, text := range []string{a.Runscript, a.Environment[envScript], a.Deffile} {
		if text != "" {
			fmt.Fprint(w, text)
			if !strings.HasSuffix(text, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}

func quoteValue(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runHelpScript prints an image's help (the %help section of its definition file), as
// Apptainer's run-help does.
const runHelpScript = `if [ -f /.singularity.d/runscript.help ]; then cat /.singularity.d/runscript.help; else echo "No help sections were defined for this image"; fi`

func newRunHelpCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run-help IMAGE",
		Short: "Show an image's help text (its definition file's %help section)",
		Args:  ExactArgs(1, "one IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o launchOptions
			return launch(cmd.Context(), g, isolation.VerbExec, &o, args[0], []string{"/bin/sh", "-c", runHelpScript})
		},
	}
}
