package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppScript runs inspect's SCIF scripts with /bin/sh against an app tree in a temporary
// directory (the script's /scif rewritten to it): each flag shows its section, labels by default.
func TestAppScript(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"scif/apps/hello/scif/labels.json":           "{\n\t\"AUTHOR\": \"me\",\n\t\"VERSION\": \"1.0\"\n}\n",
		"scif/apps/hello/scif/runscript":             "#!/bin/sh\necho run\n",
		"scif/apps/hello/scif/env/90-environment.sh": "export A=1\n",
		"scif/apps/hello/scif/test":                  "#!/bin/sh\necho test\n",
		"scif/apps/hello/scif/runscript.help":        "helps\n",
		"scif/apps/other/scif/runscript":             "#!/bin/sh\n",
		"scif/apps/notanapp/README":                  "no scif directory\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		s    inspectSections
		want string
		code int
	}{
		{"list", inspectSections{listApps: true}, "hello\nother\n", 0},
		{"labels by default", inspectSections{app: "hello"}, "AUTHOR: me\nVERSION: 1.0\n", 0},
		{"runscript", inspectSections{app: "hello", runscript: true}, "#!/bin/sh\necho run\n", 0},
		{"environment and test", inspectSections{app: "hello", environment: true, test: true}, "export A=1\n#!/bin/sh\necho test\n", 0},
		{"help", inspectSections{app: "hello", helpfile: true}, "helps\n", 0},
		{"all", inspectSections{app: "hello", all: true}, "AUTHOR: me\nVERSION: 1.0\n#!/bin/sh\necho run\nexport A=1\n#!/bin/sh\necho test\nhelps\n", 0},
		{"missing sections", inspectSections{app: "other", test: true}, "", 0},
		{"no such app", inspectSections{app: "nope"}, "", 255},
	} {
		t.Run(c.name, func(t *testing.T) {
			script, err := c.s.appScript("img.sif", false)
			if err != nil {
				t.Fatal(err)
			}
			script = strings.ReplaceAll(script, "/scif/apps", root+"/scif/apps")
			cmd := exec.Command("/bin/sh", "-c", script, "sh", "img.sif")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if string(out) != c.want || code != c.code {
				t.Errorf("stdout %q, exit %d; want %q, exit %d (stderr %q)", out, code, c.want, c.code, stderr.String())
			}
			if c.code != 0 && (strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "img.sif has no app nope")) {
				t.Errorf("stderr %q: want one line naming the image and the app", stderr.String())
			}
		})
	}
}

// TestAppScriptRefused: flag combinations inspect refuses before it opens anything.
func TestAppScriptRefused(t *testing.T) {
	for _, c := range []struct {
		s      inspectSections
		asJSON bool
		want   string
	}{
		{inspectSections{listApps: true}, true, "--json"},
		{inspectSections{listApps: true, app: "a"}, false, "not both"},
		{inspectSections{listApps: true, labels: true}, false, "without section flags"},
		{inspectSections{app: "a", deffile: true}, false, "--deffile"},
		{inspectSections{app: "../a"}, false, "--app"},
	} {
		if _, err := c.s.appScript("img.sif", c.asJSON); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v json=%v: error %v, want one naming %q", c.s, c.asJSON, err, c.want)
		}
	}
}
