package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/sif"
)

// scif reports whether inspect is asked about SCIF apps (--list-apps, --app).
func (s *inspectSections) scif() bool { return s.listApps || s.app != "" }

// inspectApps lists the SCIF apps of an Apptainer image or shows an app's sections. They are files
// inside the image (/scif/apps/NAME/scif), which hpcctl's lean binary does not read itself (it
// links no squashfs reader): a container shows them, as run-help shows the image's help.
func inspectApps(ctx context.Context, g *Globals, ref refOptions, image string, s inspectSections, asJSON bool) error {
	script, err := s.appScript(image, asJSON)
	if err != nil {
		return Usage(err)
	}
	path, release, err := inspectPath(ctx, g, ref, image)
	if err != nil {
		return err
	}
	defer release()
	if err := checkSCIFImage(path, image); err != nil {
		return err
	}
	var o launchOptions
	return launch(ctx, g, isolation.VerbExec, &o, path, []string{"/bin/sh", "-c", script, "sh", image})
}

// checkSCIFImage refuses an image built from an OCI image (by hpcctl or from docker://): only
// Apptainer's definition-file builds have SCIF apps. Bare squashfs files and sandbox directories
// are looked into as they are.
func checkSCIFImage(path, image string) error {
	si, err := sif.Open(path)
	if err != nil {
		return nil //nolint:nilerr // not a SIF: the launch opens it, or says what it is
	}
	if si.Config != nil && !si.Apptainer {
		return fmt.Errorf("inspect: %s is an OCI image: it has no SCIF apps (Apptainer builds them from a definition file's %%app sections)", image)
	}
	return nil
}

// appScript is the shell script that prints what the flags ask for, inside the container; its $1
// is the image as the user named it.
func (s *inspectSections) appScript(image string, asJSON bool) (string, error) {
	switch {
	case asJSON:
		return "", errors.New("inspect --list-apps/--app print text: run without --json")
	case s.listApps && s.app != "":
		return "", errors.New("inspect: give --list-apps or --app NAME, not both")
	case s.listApps && (s.any() || s.test || s.helpfile || s.startscript):
		return "", errors.New("inspect --list-apps lists app names only: run it without section flags")
	case s.deffile || s.startscript:
		return "", fmt.Errorf("inspect --app %s: --deffile and --startscript are the image's, not an app's: run without --app", s.app)
	}
	if s.listApps {
		return `for d in /scif/apps/*; do if [ -d "$d/scif" ]; then echo "${d##*/}"; fi; done; exit 0`, nil
	}
	if err := isolation.CheckAppName(s.app); err != nil {
		return "", err
	}
	dir := "/scif/apps/" + s.app + "/scif"
	var b strings.Builder
	fmt.Fprintf(&b, `if [ ! -d %s ]; then echo "hpcctl: $1 has no app %s (list them with: hpcctl inspect --list-apps $1)" >&2; exit 255; fi; `, dir, s.app)
	labels := s.labels || s.all || !(s.runscript || s.environment || s.test || s.helpfile)
	if labels {
		// Apptainer writes labels.json indented, one "key": "value" a line.
		fmt.Fprintf(&b, `if [ -f %s/labels.json ]; then sed -n 's/^[[:space:]]*"\(.*\)": "\(.*\)",\{0,1\}$/\1: \2/p' %s/labels.json; fi; `, dir, dir)
	}
	for _, sec := range []struct {
		on    bool
		files string
	}{{s.runscript || s.all, dir + "/runscript"}, {s.environment || s.all, dir + "/env/*.sh"}, {s.test || s.all, dir + "/test"}, {s.helpfile || s.all, dir + "/runscript.help"}} {
		if sec.on {
			fmt.Fprintf(&b, `for f in %s; do if [ -f "$f" ]; then cat "$f"; fi; done; `, sec.files)
		}
	}
	b.WriteString("exit 0")
	return b.String(), nil
}
