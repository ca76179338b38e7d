package cli

import (
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestApptainerPageListsExecFlags: docs/apptainer.md's first table has one row per flag of
// `hpcctl exec --help`, with its short form, and no row for a flag hpcctl does not have.
func TestApptainerPageListsExecFlags(t *testing.T) {
	page, err := os.ReadFile("../../docs/apptainer.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := pageFlags(t, string(page))
	root := newRootCmd(&Globals{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}, []Verbs{LaunchVerbs})
	exec, _, err := root.Find([]string{"exec"})
	if err != nil {
		t.Fatal(err)
	}
	actual := map[string]string{}
	add := func(f *pflag.Flag) {
		if f.Name != "help" {
			actual[f.Name] = f.Shorthand
		}
	}
	exec.LocalFlags().VisitAll(add)
	exec.InheritedFlags().VisitAll(add)
	if len(actual) < 40 {
		t.Fatalf("exec has %d flags: the test does not see them", len(actual))
	}
	var missing, extra, short []string
	for name, sh := range actual {
		d, ok := documented[name]
		switch {
		case !ok:
			missing = append(missing, "--"+name)
		case d != sh:
			short = append(short, "--"+name+" -"+sh+" (page: -"+d+")")
		}
	}
	for name := range documented {
		if _, ok := actual[name]; !ok {
			extra = append(extra, "--"+name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(short)
	if len(missing)+len(extra)+len(short) > 0 {
		t.Errorf("docs/apptainer.md and hpcctl exec --help disagree: missing from the page %q; on the page but not a flag %q; short forms %q", missing, extra, short)
	}
}

// pageFlags reads the first cell of each row of the launch-flag table: long name -> short form.
func pageFlags(t *testing.T, page string) map[string]string {
	t.Helper()
	_, rest, ok := strings.Cut(page, "## Launch flags of")
	if !ok {
		t.Fatal(`docs/apptainer.md has no "## Launch flags of" section`)
	}
	table, _, _ := strings.Cut(rest, "\n## ")
	long := regexp.MustCompile("`--([a-z0-9-]+)`")
	shortRe := regexp.MustCompile("`-([a-zA-Z])`")
	out := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		first := strings.Split(line, "|")[1]
		m := long.FindStringSubmatch(first)
		if m == nil {
			t.Fatalf("row without a long flag: %q", line)
		}
		sh := ""
		if s := shortRe.FindStringSubmatch(first); s != nil {
			sh = s[1]
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("--%s has two rows", m[1])
		}
		out[m[1]] = sh
	}
	return out
}
