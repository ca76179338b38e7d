package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hpcctl/hpcctl/internal/gpu"
)

// gpuTestRootEnv names a fake driver layout (gpu.TestHost) that --nv, --rocm and --device read
// instead of the host's, so that tests run on machines without a GPU. A launch through the
// setuid starter, or by a setuid hpcctl, ignores it: there it would let a user choose what the
// privileged path binds.
const gpuTestRootEnv = "HPCCTL_TEST_GPU_ROOT"

// gpuOptions are --nv, --rocm, --device and --cdi-dirs.
type gpuOptions struct {
	nv, rocm bool
	devices  []string
	cdiDirs  []string
	found    gpu.Found // what resolve found, for isolationOptions
}

func addGPUFlags(f *pflag.FlagSet, o *gpuOptions) {
	f.BoolVar(&o.nv, "nv", false, "bind the host's NVIDIA driver: the libraries of nvliblist.conf (found with ldconfig -p) into "+gpu.LibDir+", nvidia-smi and friends, /dev/nvidia*")
	f.BoolVar(&o.rocm, "rocm", false, "bind the host's AMD ROCm stack: the libraries of rocmliblist.conf into "+gpu.LibDir+", rocm-smi, rocminfo, /dev/kfd and /dev/dri")
	f.StringArrayVar(&o.devices, "device", nil, "bind the CDI `device` vendor.com/class=name (e.g. nvidia.com/gpu=0) as its CDI spec says (repeatable, comma lists)")
	f.StringSliceVar(&o.cdiDirs, "cdi-dirs", nil, "read CDI specs from these `dirs` (default /etc/cdi,/var/run/cdi)")
}

// resolve finds what the GPU flags bind, once per launch; privileged says the launch takes the
// setuid starter. It warns, in one line each, when a flag finds nothing or a CDI hook is not run.
func (o *gpuOptions) resolve(ctx context.Context, g *Globals, privileged bool) error {
	var devices []string
	for _, d := range o.devices {
		for _, n := range strings.Split(d, ",") {
			if n = strings.TrimSpace(n); n != "" {
				devices = append(devices, n)
			}
		}
	}
	if !o.nv && !o.rocm && len(devices) == 0 {
		return nil
	}
	h := gpu.SystemHost(os.Getenv("PATH"), filepath.Dir(defaultConfigPath()))
	if root := os.Getenv(gpuTestRootEnv); root != "" {
		if privileged || setuid() {
			g.Logger.Debug("ignoring $" + gpuTestRootEnv + " on the setuid path")
		} else {
			h = gpu.TestHost(root, h.ConfDir)
		}
	}
	if len(o.cdiDirs) > 0 {
		h.CDIDirs = o.cdiDirs
	}
	for _, v := range []struct {
		on bool
		v  gpu.Vendor
	}{{o.nv, gpu.NVIDIA}, {o.rocm, gpu.ROCm}} {
		if !v.on {
			continue
		}
		f, err := gpu.Find(ctx, v.v, h)
		if err != nil {
			return err
		}
		if f.Empty() {
			warn(g, fmt.Sprintf("%s: no %s driver found on this host (no library of %s in the ld.so cache, none of its programs on PATH, no device): the container runs without it", v.v.Flag, v.v.Name, v.v.ListFile))
		}
		g.Logger.Info(v.v.Flag, "libraries", f.Libs, "programs", f.Programs, "devices", f.Devices)
		o.found.Add(f)
	}
	for _, n := range devices {
		// A mistyped name is a usage error, without starting the companion.
		if err := gpu.CheckCDIName(n); err != nil {
			return Usage(err)
		}
	}
	if len(devices) > 0 {
		f, err := resolveCDI(ctx, g, h.CDIDirs, devices)
		if err != nil {
			return err
		}
		o.found.Add(f)
	}
	for _, n := range o.found.Notes {
		warn(g, n)
	}
	return nil
}

// warn prints one warning line unless -q.
func warn(g *Globals, msg string) {
	if !g.Quiet {
		fmt.Fprintf(g.Stderr, "hpcctl: warning: %s\n", msg)
	}
}

// CDIVerb is the companion's hidden command that resolves CDI device names: the CDI library (YAML,
// validation) would add its package initialisation to every container's start, so hpcctl does
// not link it and asks the companion when --device is given.
const CDIVerb = "cdi-resolve"

// CDIArgs are the arguments of CDIVerb for names against the specs in dirs.
func CDIArgs(dirs, names []string) []string {
	var args []string
	for _, d := range dirs {
		args = append(args, "--cdi-dir", d)
	}
	return append(append(args, "--"), names...)
}

// resolveCDI asks the companion what the CDI devices bind; a name it cannot resolve fails the
// launch with the companion's own line.
func resolveCDI(ctx context.Context, g *Globals, dirs, names []string) (gpu.Found, error) {
	out, err := companionOutput(ctx, g, CDIVerb, CDIArgs(dirs, names))
	if err != nil {
		return gpu.Found{}, err
	}
	var f gpu.Found
	if err := json.Unmarshal(out, &f); err != nil {
		return gpu.Found{}, fmt.Errorf("--device: read %s's answer: %w", Companion, err)
	}
	return f, nil
}
