package imagecli

import (
	"bytes"
	"testing"

	"github.com/hpcctl/hpcctl/internal/cli"
)

// TestVerbsMatchImageVerbList fails when the companion's visible commands and the list hpcctl
// forwards to it (cli.ImageVerbList, which the lean binary keeps because it cannot link these
// commands) drift apart.
func TestVerbsMatchImageVerbList(t *testing.T) {
	var out bytes.Buffer
	g := &cli.Globals{Stdout: &out, Stderr: &out}
	visible := map[string]string{}
	for _, c := range Verbs(g) {
		if !c.Hidden {
			visible[c.Name()] = c.Short
		}
	}
	list := cli.ImageVerbList()
	if len(visible) != len(list) {
		t.Errorf("hpcctl-image has %d visible commands, cli.ImageVerbList %d", len(visible), len(list))
	}
	for _, v := range list {
		short, ok := visible[v.Name]
		switch {
		case !ok:
			t.Errorf("cli.ImageVerbList names %q, which hpcctl-image lacks", v.Name)
		case short != v.Short:
			t.Errorf("%s: hpcctl-image says %q, hpcctl %q", v.Name, short, v.Short)
		}
	}
}
