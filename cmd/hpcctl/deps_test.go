package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// hpcctl starts twice per job: it must not link the image and signing libraries, whose package
// initialisation alone doubled its start-up (they live in hpcctl-image, which checks signatures),
// nor the squashfs reader's decompressors, whose tables cost each start about half a millisecond
// (hpcctl-image extracts for --unsquash), nor image-spec, whose go-digest compiles regular
// expressions at start (sif.ImageConfig decodes what a launch needs).
func TestLeanImports(t *testing.T) {
	// go test runs this on the machine that built it, where the build's GOROOT is the toolchain.
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // SA1019, see above
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		// The superblock check, a leaf without compressors, is the one part of package squashfs
		// hpcctl needs (a damaged image is refused before it is mounted).
		if pkg == "github.com/hpcctl/hpcctl/internal/squashfs/superblock" {
			continue
		}
		for _, banned := range []string{
			"github.com/hpcctl/hpcctl/internal/sign", "github.com/hpcctl/hpcctl/internal/cli/imagecli",
			"github.com/hpcctl/hpcctl/internal/build", "github.com/hpcctl/hpcctl/internal/oci",
			"go.podman.io/", "github.com/sylabs/sif/v2/pkg/integrity", "github.com/ProtonMail/",
			"github.com/hpcctl/hpcctl/internal/squashfs", "github.com/klauspost/compress",
			"github.com/ulikunitz/xz", "github.com/pierrec/lz4",
			"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec",
		} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") || (strings.HasSuffix(banned, "/") && strings.HasPrefix(pkg, banned)) {
				t.Errorf("hpcctl imports %s: move the code that needs it to hpcctl-image", pkg)
			}
		}
	}
}
