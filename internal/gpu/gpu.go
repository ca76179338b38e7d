// Package gpu finds the host's GPU driver files (NVIDIA's, AMD ROCm's, CDI devices) and turns
// them into the binds that give a container the GPU, as Apptainer's --nv, --rocm and --device do.
package gpu

import (
	"context"
	_ "embed" // the default library lists
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// LibDir is where a container finds the host's driver libraries, Apptainer's directory: the
// launch puts it on LD_LIBRARY_PATH.
const LibDir = "/.singularity.d/libs"

// BinDir is where a container finds the host's driver programs (nvidia-smi), as with Apptainer.
const BinDir = "/usr/bin"

var (
	//go:embed nvliblist.conf
	nvList string
	//go:embed rocmliblist.conf
	rocmList string
)

// Vendor is one GPU stack: its flag, its list of libraries and programs, and its devices.
type Vendor struct {
	Name     string // for messages: "NVIDIA"
	Flag     string // "--nv"
	ListFile string // the list's file name in the site's configuration directory
	list     string // the list built in, when the site has none
	// devices are patterns of device files and directories, relative to /dev.
	devices []string
}

// NVIDIA is --nv: /dev/nvidia0..N, nvidiactl, nvidia-uvm(-tools), nvidia-modeset and the
// nvidia-caps directory (MIG capabilities).
var NVIDIA = Vendor{Name: "NVIDIA", Flag: "--nv", ListFile: "nvliblist.conf", list: nvList, devices: []string{"nvidia*"}}

// ROCm is --rocm: the kernel fusion driver and the DRM render nodes.
var ROCm = Vendor{Name: "AMD ROCm", Flag: "--rocm", ListFile: "rocmliblist.conf", list: rocmList, devices: []string{"kfd", "dri"}}

// Host is where the host's driver files are looked for.
type Host struct {
	// LdCache is the ld.so.cache to read ("" is the system's, /etc/ld.so.cache).
	LdCache string
	// Ldconfig is the ldconfig program ("" finds it).
	Ldconfig string
	// Path are the directories searched for the programs of the list.
	Path []string
	// Dev is the host's device directory.
	Dev string
	// ConfDir holds a site's own lists (nvliblist.conf, rocmliblist.conf); the built-in ones
	// serve when it has none.
	ConfDir string
	// CDIDirs are the directories of CDI specs, lowest priority first.
	CDIDirs []string
}

// DefaultCDIDirs are where CDI specs live (the CDI library's defaults).
var DefaultCDIDirs = []string{"/etc/cdi", "/var/run/cdi"}

// SystemHost is the real host: its ld.so.cache, the PATH given, /dev, /etc/cdi and /var/run/cdi.
func SystemHost(pathEnv, confDir string) Host {
	return Host{Path: filepath.SplitList(pathEnv), Dev: "/dev", ConfDir: confDir, CDIDirs: DefaultCDIDirs}
}

// TestHost is a fake driver layout under root, for tests on machines without a GPU:
// ROOT/etc/ld.so.cache, programs in ROOT/usr/bin and ROOT/bin, devices in ROOT/dev, CDI specs
// in ROOT/etc/cdi.
func TestHost(root, confDir string) Host {
	return Host{
		LdCache: filepath.Join(root, "etc", "ld.so.cache"),
		Path:    []string{filepath.Join(root, "usr", "bin"), filepath.Join(root, "bin")},
		Dev:     filepath.Join(root, "dev"),
		ConfDir: confDir,
		CDIDirs: []string{filepath.Join(root, "etc", "cdi")},
	}
}

// Found is what a launch binds for a GPU stack.
type Found struct {
	Mounts []spec.Mount
	// Env are variables the container gets (a CDI spec's).
	Env []string
	// Libs is the number of libraries bound into LibDir: the launch then puts LibDir on
	// LD_LIBRARY_PATH.
	Libs int
	// Programs and Devices count the rest, for messages.
	Programs, Devices int
	// Notes are things found but not honoured (CDI hooks), one line each.
	Notes []string
}

// Empty says that nothing of the stack was found.
func (f Found) Empty() bool { return len(f.Mounts) == 0 && len(f.Env) == 0 }

// Add appends another stack's binds; a destination bound twice keeps its first source.
func (f *Found) Add(g Found) {
	for _, m := range g.Mounts {
		if !slices.ContainsFunc(f.Mounts, func(o spec.Mount) bool { return o.Destination == m.Destination }) {
			f.Mounts = append(f.Mounts, m)
		}
	}
	f.Env = append(f.Env, g.Env...)
	f.Libs += g.Libs
	f.Programs += g.Programs
	f.Devices += g.Devices
	f.Notes = append(f.Notes, g.Notes...)
}

// Find finds v's libraries (in the ld.so cache), programs (on the host's path) and devices, and
// returns their binds: libraries and programs read-only.
func Find(ctx context.Context, v Vendor, h Host) (Found, error) {
	libs, progs, err := v.names(h.ConfDir)
	if err != nil {
		return Found{}, err
	}
	var f Found
	if len(libs) > 0 {
		entries, lerr := readLdCache(ctx, h)
		if lerr != nil {
			return Found{}, fmt.Errorf("%s: %w", v.Flag, lerr)
		}
		for _, e := range MatchLibs(entries, libs) {
			src, serr := filepath.EvalSymlinks(e.Path)
			if serr != nil {
				continue // a stale cache entry
			}
			f.Mounts = append(f.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: path.Join(LibDir, e.Name), ReadOnly: true})
			f.Libs++
		}
	}
	for _, p := range progs {
		if src := findProgram(p, h.Path); src != "" {
			f.Mounts = append(f.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: path.Join(BinDir, p), ReadOnly: true})
			f.Programs++
		}
	}
	devs, err := findDevices(h.Dev, v.devices)
	if err != nil {
		return Found{}, fmt.Errorf("%s: %w", v.Flag, err)
	}
	for _, d := range devs {
		// Optional: a device that went away since (a GPU reset) must not fail the launch, and
		// where the profile binds the host's whole /dev the node is there already.
		f.Mounts = append(f.Mounts, spec.Mount{Kind: spec.KindBind, Source: filepath.Join(h.Dev, d), Destination: path.Join("/dev", d), Optional: true})
		f.Devices++
	}
	return f, nil
}

// names reads the site's list of v (ConfDir/ListFile) or the built-in one.
func (v Vendor) names(confDir string) (libs, progs []string, err error) {
	text := v.list
	if confDir != "" {
		p := filepath.Join(confDir, v.ListFile)
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			text = string(b)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, nil, fmt.Errorf("%s: %w", v.Flag, err)
		}
	}
	libs, progs = ParseList(text)
	return libs, progs, nil
}

// ParseList reads a library list in the format of Apptainer's nvliblist.conf: one name a line,
// '#' comments; names with ".so" in them are libraries, the others programs.
func ParseList(text string) (libs, progs []string) {
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		name := strings.TrimSpace(line)
		switch {
		case name == "" || strings.ContainsAny(name, "/ \t") || name == "." || name == "..":
			continue // not a file name: a program or library is found by name only
		case strings.Contains(name, ".so"):
			libs = append(libs, name)
		default:
			progs = append(progs, name)
		}
	}
	return libs, progs
}

// LibEntry is one library of the ld.so cache: its name (soname or file name) and path.
type LibEntry struct{ Name, Path string }

// readLdCache lists the libraries of the host's architecture in the ld.so cache, with
// `ldconfig -p` (glibc's own reader of its cache format), `-C FILE` for another cache.
func readLdCache(ctx context.Context, h Host) ([]LibEntry, error) {
	prog := h.Ldconfig
	if prog == "" {
		prog = findProgram("ldconfig", []string{"/sbin", "/usr/sbin", "/usr/bin", "/bin"})
	}
	if prog == "" {
		return nil, errors.New("ldconfig not found in /sbin or /usr/sbin: install libc-bin to find the driver's libraries")
	}
	args := []string{"-p"}
	if h.LdCache != "" {
		args = []string{"-C", h.LdCache, "-p"}
	}
	out, err := exec.CommandContext(ctx, prog, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("read the library cache (%s %s): %w", prog, strings.Join(args, " "), err)
	}
	return ParseLdconfig(string(out), archTag(runtime.GOARCH)), nil
}

// archTag is how `ldconfig -p` marks libraries of a 64-bit architecture: "(libc6,x86-64)";
// the 32-bit ones of a multilib host carry no such tag and are left out.
func archTag(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86-64"
	case "arm64":
		return "AArch64"
	}
	return "64bit"
}

// ParseLdconfig reads `ldconfig -p` output ("\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/...") and
// keeps the entries whose flags name the architecture tag, in the cache's order.
func ParseLdconfig(out, tag string) []LibEntry {
	var entries []LibEntry
	for _, line := range strings.Split(out, "\n") {
		left, p, ok := strings.Cut(strings.TrimSpace(line), " => ")
		if !ok {
			continue // the header: "N libs found in cache ..."
		}
		name, flags, ok := strings.Cut(left, " (")
		if !ok || !strings.HasSuffix(flags, ")") {
			continue
		}
		if !slices.Contains(strings.Split(strings.TrimSuffix(flags, ")"), ","), tag) {
			continue
		}
		entries = append(entries, LibEntry{Name: strings.TrimSpace(name), Path: strings.TrimSpace(p)})
	}
	return entries
}

// MatchLibs picks the entries listed: a list name matches itself and its versions (libcuda.so
// matches libcuda.so.1 and libcuda.so.550.54.14, not libcudart.so). A name the cache holds twice
// keeps its first entry, as the dynamic linker would. Sorted by name.
func MatchLibs(entries []LibEntry, names []string) []LibEntry {
	seen := map[string]bool{}
	var out []LibEntry
	for _, e := range entries {
		if seen[e.Name] || !slices.ContainsFunc(names, func(n string) bool { return e.Name == n || strings.HasPrefix(e.Name, n+".") }) {
			continue
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// findProgram finds an executable file called name in dirs, its symlinks resolved.
func findProgram(name string, dirs []string) string {
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue // a relative PATH entry would depend on the working directory
		}
		p := filepath.Join(d, name)
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
	}
	return ""
}

// findDevices lists the device files and directories under dev matching the patterns, relative
// to dev and sorted. A missing dev finds nothing.
func findDevices(dev string, patterns []string) ([]string, error) {
	var out []string
	for _, pat := range patterns {
		m, err := filepath.Glob(filepath.Join(dev, pat))
		if err != nil {
			return nil, fmt.Errorf("device pattern %s: %w", pat, err)
		}
		for _, p := range m {
			st, err := os.Lstat(p)
			if err != nil || st.Mode()&fs.ModeSymlink != 0 {
				continue // a symlink would lead the bind elsewhere
			}
			rel, _ := filepath.Rel(dev, p)
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// CheckCDIName refuses what is not a qualified CDI device name (vendor.com/class=name), as --device
// takes them. The CDI parser alone is light: hpcctl checks names itself, and the companion reads
// the specs (internal/gpu/cdi).
func CheckCDIName(n string) error {
	if !parser.IsQualifiedName(n) {
		return fmt.Errorf("--device %q: not a CDI device name; give vendor.com/class=name (e.g. nvidia.com/gpu=0)", n)
	}
	return nil
}
