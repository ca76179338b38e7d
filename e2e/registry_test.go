package e2e

import (
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestRegistryPushPull pushes the busybox fixture to the test registry with skopeo and reads it
// back: the registry the docker:// source tests pull from works and keeps the manifest as pushed.
func TestRegistryPushPull(t *testing.T) {
	addr := needRegistry(t)
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_BUSYBOX_OCI")
	testutil.NeedCommands(t, "skopeo")
	src := "oci:" + layout + ":latest"
	ref := "docker://" + addr + "/hpcctl-e2e/busybox:" + strings.ToLower(sanitize(t.Name()))
	run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", src, ref).mustSucceed(t, "skopeo copy to the registry")
	want := run(t, "skopeo", "inspect", "--format", "{{.Digest}}", src).mustSucceed(t, "skopeo inspect the layout")
	got := run(t, "skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref).mustSucceed(t, "skopeo inspect the registry")
	if strings.TrimSpace(got.Stdout) != strings.TrimSpace(want.Stdout) || !strings.HasPrefix(want.Stdout, "sha256:") {
		t.Errorf("the registry's manifest digest is %q, want the pushed %q", got.Stdout, want.Stdout)
	}
}
