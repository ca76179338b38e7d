package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestRegistryPushPull pushes a small image made locally with umoci to the test registry and
// inspects it back with skopeo: the registry the docker:// source tests pull from works.
func TestRegistryPushPull(t *testing.T) {
	addr := needRegistry(t)
	testutil.NeedCommands(t, "umoci", "skopeo")
	u := needUser(t)
	dir := workDir(t, u)
	layout := filepath.Join(dir, "layout")
	run(t, "umoci", "init", "--layout", layout).mustSucceed(t, "umoci init")
	run(t, "umoci", "new", "--image", layout+":e2e").mustSucceed(t, "umoci new")
	ref := "docker://" + addr + "/hpcctl-e2e/empty:" + sanitize(t.Name())
	run(t, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":e2e", ref).mustSucceed(t, "skopeo copy to the registry")
	r := run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", ref).mustSucceed(t, "skopeo inspect")
	if !strings.Contains(r.Stdout, "application/vnd.oci.image.manifest.v1+json") && !strings.Contains(r.Stdout, `"schemaVersion": 2`) && !strings.Contains(r.Stdout, `"schemaVersion":2`) {
		t.Errorf("the registry returned %q, want the manifest pushed", r.Stdout)
	}
}
