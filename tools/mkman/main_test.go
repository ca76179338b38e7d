package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/cli/imagecli"
)

// TestPages: one page per command a user can run (the companion's with their real flags), none
// for hidden stages, and the same pages twice for the same date.
func TestPages(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, out := range []string{a, b} {
		if err := run(out, "v1", "2026-01-02"); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(cli.DocTree(cli.CommonVerbs, cli.LaunchVerbs, imagecli.Verbs))
	if len(want) < 30 {
		t.Fatalf("only %d commands in the tree", len(want))
	}
	for _, p := range want {
		pa, err := os.ReadFile(filepath.Join(a, p))
		if err != nil {
			t.Errorf("no page %s: %v", p, err)
			continue
		}
		pb, _ := os.ReadFile(filepath.Join(b, p))
		if string(pa) != string(pb) {
			t.Errorf("%s differs between two runs", p)
		}
	}
	ents, _ := os.ReadDir(a)
	if len(ents) != len(want) {
		t.Errorf("%d pages for %d commands", len(ents), len(want))
	}
	for _, hidden := range []string{"hpcctl-instance-monitor.1", "hpcctl-__complete.1"} {
		if _, err := os.Stat(filepath.Join(a, hidden)); err == nil {
			t.Errorf("page %s of a hidden command", hidden)
		}
	}
	for page, flag := range map[string]string{"hpcctl-exec.1": `\fB--nv\fP`, "hpcctl-build.1": `\fB--compression\fP`, "hpcctl-instance-list.1": `\fB--json\fP`} {
		b, _ := os.ReadFile(filepath.Join(a, page))
		if !strings.Contains(string(b), flag) || !strings.Contains(string(b), `"Jan 2026"`) {
			t.Errorf("%s lacks %s or the date", page, flag)
		}
	}
	if err := run(filepath.Join(dir, "c"), "v1", "2026-13-01"); err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD") {
		t.Errorf("a bad date: %v", err)
	}
}
