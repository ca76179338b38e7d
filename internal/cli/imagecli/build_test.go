package imagecli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// TestBuildSign builds and signs in one step: the image verifies with the key, an ed25519-signed
// build is reproducible, and a refused key leaves no image.
func TestBuildSign(t *testing.T) {
	signEnv(t)
	t.Setenv("HPCCTL_CACHEDIR", t.TempDir())
	layout := filepath.Join(t.TempDir(), "layout")
	ocitest.WriteLayout(t, layout, "latest", ocitest.Image{Layers: [][]byte{layertest.Tar([]layertest.File{layertest.Reg("hello", "hi\n")})}})
	src := "oci:" + layout + ":latest"
	mustRun(t, "key", "newpair", "--name", "lab")
	pub := filepath.Join(t.TempDir(), "lab.pub")
	mustRun(t, "key", "export", "lab", "-o", pub)
	out := t.TempDir()
	a, b := filepath.Join(out, "a.sif"), filepath.Join(out, "b.sif")
	mustRun(t, "build", "--sign", "--key", "lab", a, src)
	mustRun(t, "build", "--sign", "--key", "lab", b, src)
	if v := mustRun(t, "verify", "--key", pub, a); !strings.Contains(v, "lab") {
		t.Errorf("verify printed %q, want the signer", v)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Error("two signed builds of the same source differ")
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"build", "--sign", filepath.Join(out, "c.sif"), src}, 255, "--sign needs --key"},
		{[]string{"build", "--key", "lab", filepath.Join(out, "c.sif"), src}, 255, "only with --sign"},
		{[]string{"build", "--sign", "--key", "nobody", filepath.Join(out, "c.sif"), src}, 255, "nobody"},
	} {
		code, _, errOut := run(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("hpcctl %v: exit %d, %q; want %d and one line naming %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 2 {
		t.Errorf("output directory holds %d entries, want the two images", len(ents))
	}
}
