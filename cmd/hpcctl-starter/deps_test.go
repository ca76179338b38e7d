package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The setuid starter links as little as possible: the setup stage, the mount wrappers, the Spec
// and the configuration parser; no command line, image or signing library, and nothing of
// hpcctl's CLI (which reads the user's flags, environment and files).
func TestPrivilegedImports(t *testing.T) {
	// go test runs this on the machine that built it, where the build's GOROOT is the toolchain.
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // SA1019, see above
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
			continue // the standard library
		}
		allowed := false
		for _, ok := range []string{
			"github.com/hpcctl/hpcctl/internal/starter", "github.com/hpcctl/hpcctl/internal/launcher/child", "github.com/hpcctl/hpcctl/internal/signals",
			"github.com/hpcctl/hpcctl/internal/mount", "github.com/hpcctl/hpcctl/internal/spec",
			"github.com/hpcctl/hpcctl/internal/config", "github.com/BurntSushi/toml", "golang.org/x/sys/",
			"github.com/hpcctl/hpcctl/cmd/hpcctl-starter",
			// The SIF reader finds the partition of a trusted image itself (rules.Partition).
			"github.com/sylabs/sif/v2/pkg/sif", "github.com/google/uuid",
			"github.com/google/go-containerregistry/pkg/v1", // its types, which the SIF reader names
		} {
			if pkg == ok || strings.HasPrefix(pkg, ok+"/") || strings.HasSuffix(ok, "/") && strings.HasPrefix(pkg, ok) {
				allowed = true
			}
		}
		if !allowed {
			t.Errorf("hpcctl-starter imports %s: the setuid program must stay small", pkg)
		}
	}
}
