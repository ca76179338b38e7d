// Package cdi resolves Container Device Interface names for --device with the CDI project's own
// library. It is linked into hpcctl-image only (the hidden cdi-resolve command): the library
// brings YAML and validation packages whose initialisation would cost every container's start.
package cdi

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/hpcctl/hpcctl/internal/gpu"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// Resolve resolves Container Device Interface names (vendor.com/class=name, as --device takes
// them) against the specs in dirs (lowest priority first), with the CDI project's own library (parsing, validation, the
// priority of directories), and turns their container edits into binds: device nodes are bound
// from the host (a user namespace cannot make device nodes), mounts are bound, variables set.
// Hooks need a runtime that runs programs as root at set-up; hpcctl runs none and says so in
// Notes.
func Resolve(dirs, names []string) (gpu.Found, error) {
	for _, n := range names {
		if err := gpu.CheckCDIName(n); err != nil {
			return gpu.Found{}, err
		}
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return gpu.Found{}, fmt.Errorf("--device: read the CDI specs in %s: %w", strings.Join(dirs, ", "), err)
	}
	var f gpu.Found
	specs := map[*cdi.Spec]bool{}
	for _, n := range names {
		d := cache.GetDevice(n)
		if d == nil {
			return gpu.Found{}, fmt.Errorf("--device %s: no such CDI device in %s (%s)", n, strings.Join(dirs, ", "), known(cache))
		}
		// The spec's own edits apply once, whatever number of its devices are asked for.
		if s := d.GetSpec(); !specs[s] {
			specs[s] = true
			f.Add(fromEdits(s.ContainerEdits, s.GetPath()))
		}
		f.Add(fromEdits(d.ContainerEdits, d.GetSpec().GetPath()))
	}
	return f, nil
}

// known says which devices the specs define, for an error about a missing one.
func known(cache *cdi.Cache) string {
	devs := cache.ListDevices()
	if len(devs) == 0 {
		errs := cache.GetErrors()
		for p, e := range errs {
			return fmt.Sprintf("none defined; %s: %v", p, e[0])
		}
		return "none defined"
	}
	sort.Strings(devs)
	if len(devs) > 8 {
		devs = append(devs[:8], "...")
	}
	return "defined: " + strings.Join(devs, ", ")
}

// fromEdits turns one set of CDI container edits into binds and variables.
func fromEdits(e cdispec.ContainerEdits, specPath string) gpu.Found {
	var f gpu.Found
	for _, d := range e.DeviceNodes {
		if d == nil {
			continue
		}
		src := d.HostPath
		if src == "" {
			src = d.Path
		}
		f.Mounts = append(f.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: path.Clean(d.Path)})
		f.Devices++
	}
	for _, m := range e.Mounts {
		if m == nil {
			continue
		}
		f.Mounts = append(f.Mounts, spec.Mount{
			Kind: spec.KindBind, Source: m.HostPath, Destination: path.Clean(m.ContainerPath),
			ReadOnly: slices.Contains(m.Options, "ro"), Recursive: slices.Contains(m.Options, "rbind"),
		})
	}
	f.Env = append(f.Env, e.Env...)
	for _, h := range e.Hooks {
		if h != nil {
			f.Notes = append(f.Notes, fmt.Sprintf("--device: CDI spec %s: %s hook %s not run (hpcctl runs no OCI hooks)", specPath, h.HookName, h.Path))
		}
	}
	return f
}
