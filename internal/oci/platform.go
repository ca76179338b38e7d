package oci

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// chooseInstance picks the manifest for the requested (or host) platform from an index, as
// containers/image's copy would, and on failure lists the platforms the index offers.
func chooseInstance(raw []byte, mime string, sys *types.SystemContext) (digest.Digest, error) {
	list, err := manifest.ListFromBlob(raw, mime)
	if err != nil {
		return "", fmt.Errorf("parse image index: %w", err)
	}
	d, err := list.ChooseInstance(sys)
	if err == nil {
		return d, nil
	}
	return "", &Error{Kind: ErrPlatform, Err: err, Msg: fmt.Sprintf(
		"the image has no %s build: choose one with --arch/--os/--variant from: %s",
		wanted(sys), strings.Join(platforms(list), ", "))}
}

func wanted(sys *types.SystemContext) string {
	os, arch := sys.OSChoice, sys.ArchitectureChoice
	if os == "" {
		os = runtime.GOOS
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	s := os + "/" + arch
	if sys.VariantChoice != "" {
		s += "/" + sys.VariantChoice
	}
	return s
}

// platforms lists an index's platforms as os/arch[/variant], sorted and without duplicates.
func platforms(list manifest.List) []string {
	seen := map[string]bool{}
	for _, d := range list.Instances() {
		inst, err := list.Instance(d)
		if err != nil || inst.ReadOnly.Platform == nil {
			continue
		}
		p := inst.ReadOnly.Platform
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		seen[s] = true
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"(none declared)"}
	}
	return out
}
