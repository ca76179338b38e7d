package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hpcctl starts twice per job: it must not link the image and signing libraries, whose package
// initialisation alone doubled its start-up (they live in hpcctl-image, which checks signatures).
func TestLeanImports(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/hpcctl/hpcctl/internal/sign", "github.com/hpcctl/hpcctl/internal/cli/imagecli",
			"github.com/hpcctl/hpcctl/internal/build", "github.com/hpcctl/hpcctl/internal/oci",
			"go.podman.io/", "github.com/sylabs/sif/v2/pkg/integrity", "github.com/ProtonMail/",
		} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") || (strings.HasSuffix(banned, "/") && strings.HasPrefix(pkg, banned)) {
				t.Errorf("hpcctl imports %s: move the code that needs it to hpcctl-image", pkg)
			}
		}
	}
}
