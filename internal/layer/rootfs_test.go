package layer

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestDebianRootfs flattens a real Debian tree, as GNU tar archives it, and checks that every file
// of the tree arrives once, with its content length.
func TestDebianRootfs(t *testing.T) {
	root := testutil.NeedEnvDir(t, "HPCCTL_TEST_DEBIAN_ROOTFS")
	bins := testutil.NeedCommands(t, "tar", "find")
	var blob bytes.Buffer
	tarCmd := exec.Command(bins[0], "--xattrs", "--numeric-owner", "-C", root, "-c", ".")
	tarCmd.Stdout = &blob
	if err := tarCmd.Run(); err != nil {
		t.Fatalf("tar: %v", err)
	}
	out, err := exec.Command(bins[1], root, "-mindepth", "1", "-printf", "%P\n").Output()
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	want := map[string]bool{}
	for _, p := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		want[p] = true
	}
	ls := []Layer{{Digest: "sha256:debian", Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob.Bytes())), nil
	}}}
	seen := map[string]bool{}
	st, err := Flatten(context.Background(), ls, func(e squashfs.Entry) error {
		if seen[e.Path] {
			t.Errorf("%s emitted twice", e.Path)
		}
		seen[e.Path] = true
		if e.Type == squashfs.TypeRegular {
			n, cerr := io.Copy(io.Discard, e.Body)
			if cerr != nil || n != e.Size {
				t.Errorf("%s: read %d of %d bytes: %v", e.Path, n, e.Size, cerr)
			}
		}
		return nil
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("%s is missing", p)
		}
	}
	if len(seen) != len(want)+1 { // plus "."
		t.Errorf("%d entries for %d files", len(seen), len(want))
	}
	t.Logf("%+v", st)
}
