package e2e

// GPUs without a GPU (docs/launch.md, "GPUs"): --nv, --rocm and --device against a fake driver
// layout (ELF libraries registered in a private ld.so.cache with ldconfig, programs, device nodes
// made with mknod, a CDI spec), read through $HPCCTL_TEST_GPU_ROOT: exactly the expected files
// appear in the container, and nothing else.

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hpcctl/hpcctl/internal/gpu/gputest"
)

const gpuCDISpec = `cdiVersion: "0.6.0"
kind: example.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/fakegpu0
          hostPath: ROOT/dev/nvidia0
      env:
        - FAKE_GPU=0
containerEdits:
  mounts:
    - hostPath: ROOT/lib/libcuda.so.1
      containerPath: /opt/fake/libcuda.so.1
      options: [ro, bind]
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-ctk
`

var (
	gpuOnce  sync.Once
	gpuRoot  string
	gpuEmpty string
	gpuErr   error
)

// gpuLayouts makes the fake driver layout (and an empty one) once, world-readable, as root: the
// devices are character devices 1:3.
func gpuLayouts(t *testing.T, e *ltEnv) (full, empty string) {
	t.Helper()
	gpuOnce.Do(func() {
		gpuRoot, gpuEmpty = filepath.Join(e.dir, "fakegpu"), filepath.Join(e.dir, "nogpu")
		for _, d := range []string{gpuRoot, gpuEmpty} {
			if gpuErr = os.RemoveAll(d); gpuErr != nil {
				return
			}
		}
		l := gputest.Layout{
			Libs:     []string{"libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1", "libcudart.so.12", "libnvidia-decoy.so.1", "libamdhip64.so.6", "libhsa-runtime64.so.1"},
			Programs: []string{"nvidia-smi", "rocminfo", "not-a-driver-tool"},
			Devices:  []string{"nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-caps/", "nvidia-caps/nvidia-cap1", "kfd", "dri/", "dri/renderD128", "null2"},
			CDI:      map[string]string{"example.yaml": gpuCDISpec},
		}
		var nodes bool
		if nodes, gpuErr = l.Make(gpuRoot); gpuErr == nil && !nodes {
			gpuErr = os.ErrPermission
		}
		if gpuErr == nil {
			_, gpuErr = gputest.Layout{}.Make(gpuEmpty)
		}
	})
	if gpuErr != nil {
		t.Fatalf("fake GPU layout (root makes its device nodes with mknod): %v", gpuErr)
	}
	return gpuRoot, gpuEmpty
}

// gpuProbe lists what the container sees where the GPU flags bind, one section each.
const gpuProbe = `ls -A /.singularity.d/libs 2>/dev/null; echo @; ls -A /dev; echo @; ls -A /usr/bin 2>/dev/null; echo @; echo "$LD_LIBRARY_PATH"; echo @; echo "$FAKE_GPU"`

type gpuView struct {
	libs, dev, bin []string
	ld, fakeGPU    string
}

func parseGPUView(t *testing.T, out string) gpuView {
	t.Helper()
	parts := strings.Split(out, "@\n")
	if len(parts) != 5 {
		t.Fatalf("probe output has %d sections:\n%s", len(parts), out)
	}
	return gpuView{libs: strings.Fields(parts[0]), dev: strings.Fields(parts[1]), bin: strings.Fields(parts[2]),
		ld: strings.TrimSpace(parts[3]), fakeGPU: strings.TrimSpace(parts[4])}
}

// added is what after has and before has not, sorted.
func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// TestGPUFakeLayout: under --contain (a minimal /dev), --nv and --rocm add exactly the listed
// libraries, programs and devices of the fake layout; the decoys stay out; the program runs.
func TestGPUFakeLayout(t *testing.T) {
	e := ltSetup(t)
	full, _ := gpuLayouts(t, e)
	env := []string{"HPCCTL_TEST_GPU_ROOT=" + full}
	for _, as := range []ltAs{asRoot, asUser} {
		t.Run(string(as), func(t *testing.T) {
			if as == asUser {
				instWho(t, as)
			}
			dir := e.workdir(t)
			before := ltTake(t)
			base := e.run(t, as, dir, env, "", "exec", "--contain", e.bb, "sh", "-c", gpuProbe)
			if base.code != 0 {
				t.Fatalf("exec without GPU flags: exit %d: %s", base.code, base.stderr)
			}
			without := parseGPUView(t, base.stdout)
			for _, tc := range []struct {
				flag                  string
				libs, dev, bin        []string
				run, runOut, wantDevs string
			}{
				{"--nv", []string{"libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1"},
					[]string{"nvidia-caps", "nvidia-uvm", "nvidia0", "nvidiactl"}, []string{"nvidia-smi"},
					"/usr/bin/nvidia-smi", "fake nvidia-smi", "/dev/nvidia0"},
				{"--rocm", []string{"libamdhip64.so.6", "libhsa-runtime64.so.1"},
					[]string{"dri", "kfd"}, []string{"rocminfo"}, "/usr/bin/rocminfo", "fake rocminfo", "/dev/kfd"},
			} {
				t.Run(tc.flag, func(t *testing.T) {
					r := e.run(t, as, dir, env, "", "exec", "--contain", tc.flag, e.bb, "sh", "-c", gpuProbe)
					if r.code != 0 || r.stderr != "" {
						t.Fatalf("exec %s: exit %d, stderr %q", tc.flag, r.code, r.stderr)
					}
					v := parseGPUView(t, r.stdout)
					if !slices.Equal(v.libs, tc.libs) {
						t.Errorf("%s: /.singularity.d/libs holds %q, want exactly %q", tc.flag, v.libs, tc.libs)
					}
					if got := added(without.dev, v.dev); !slices.Equal(got, tc.dev) {
						t.Errorf("%s: /dev gained %q, want exactly %q", tc.flag, got, tc.dev)
					}
					if got := added(without.bin, v.bin); !slices.Equal(got, tc.bin) {
						t.Errorf("%s: /usr/bin gained %q, want exactly %q", tc.flag, got, tc.bin)
					}
					if v.ld != "/.singularity.d/libs" {
						t.Errorf("%s: LD_LIBRARY_PATH=%q", tc.flag, v.ld)
					}
					run := e.run(t, as, dir, env, "", "exec", "--contain", tc.flag, e.bb, "sh", "-c", tc.run+"; test -c "+tc.wantDevs+" && echo is-a-device")
					if run.code != 0 || !strings.Contains(run.stdout, tc.runOut) || !strings.Contains(run.stdout, "is-a-device") {
						t.Errorf("%s: %s and the device: exit %d:\n%s%s", tc.flag, tc.run, run.code, run.stdout, run.stderr)
					}
				})
			}
			e.nothingLeft(t, before, e.bb)
		})
	}
}

// TestGPUDefaultProfile: with the host's /dev bound whole (the default profile), the libraries and
// programs are bound and the fake devices, absent from the host's /dev, are skipped.
func TestGPUDefaultProfile(t *testing.T) {
	e := ltSetup(t)
	full, _ := gpuLayouts(t, e)
	dir := e.workdir(t)
	r := e.run(t, asRoot, dir, []string{"HPCCTL_TEST_GPU_ROOT=" + full}, "", "exec", "--nv", e.bb, "sh", "-c", "ls -A /.singularity.d/libs; /usr/bin/nvidia-smi; test -e /dev/nvidia0 || echo no-device")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exec --nv: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"libnvidia-ml.so.1", "fake nvidia-smi", "no-device"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("exec --nv printed %q, want %q in it", r.stdout, want)
		}
	}
}

// TestGPUNoneFound: a host without the driver gets one warning line and a container without it.
func TestGPUNoneFound(t *testing.T) {
	e := ltSetup(t)
	_, empty := gpuLayouts(t, e)
	dir := e.workdir(t)
	for _, flag := range []string{"--nv", "--rocm"} {
		r := e.run(t, asUser, dir, []string{"HPCCTL_TEST_GPU_ROOT=" + empty}, "", "exec", "--contain", flag, e.bb, "sh", "-c", "ls -A /.singularity.d/libs 2>/dev/null; echo ran")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "ran" {
			t.Errorf("exec %s: exit %d, stdout %q", flag, r.code, r.stdout)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hpcctl: warning: "+flag+": no ") {
			t.Errorf("exec %s on a host without the driver: stderr %q, want one warning line", flag, r.stderr)
		}
		q := e.run(t, asUser, dir, []string{"HPCCTL_TEST_GPU_ROOT=" + empty}, "", "-q", "exec", flag, e.bb, "true")
		if q.code != 0 || q.stderr != "" {
			t.Errorf("-q exec %s: exit %d, stderr %q", flag, q.code, q.stderr)
		}
	}
}

// TestGPUCDIDevice: --device binds what the CDI spec says (a node under another name, a mount,
// a variable) and says in one line that its hook is not run; unknown names fail with one line.
func TestGPUCDIDevice(t *testing.T) {
	e := ltSetup(t)
	full, _ := gpuLayouts(t, e)
	env := []string{"HPCCTL_TEST_GPU_ROOT=" + full}
	for _, as := range []ltAs{asRoot, asUser} {
		t.Run(string(as), func(t *testing.T) {
			if as == asUser {
				instWho(t, as)
			}
			dir := e.workdir(t)
			r := e.run(t, as, dir, env, "", "exec", "--contain", "--device", "example.com/gpu=0", e.bb, "sh", "-c", "ls -l /dev/fakegpu0 /opt/fake/libcuda.so.1; echo FAKE_GPU=$FAKE_GPU")
			if r.code != 0 {
				t.Fatalf("exec --device: exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "FAKE_GPU=0") || !strings.Contains(r.stdout, "/dev/fakegpu0") || !strings.Contains(r.stdout, "/opt/fake/libcuda.so.1") {
				t.Errorf("exec --device printed:\n%s", r.stdout)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "nvidia-ctk") || !strings.Contains(r.stderr, "not run") {
				t.Errorf("stderr %q, want one line about the hook", r.stderr)
			}
			for _, bad := range []string{"example.com/gpu=9", "gpu0"} {
				b := e.run(t, as, dir, env, "", "exec", "--device", bad, e.bb, "true")
				if b.code != 255 || strings.Count(b.stderr, "\n") != 1 || !strings.Contains(b.stderr, bad) {
					t.Errorf("--device %s: exit %d, stderr %q; want 255 and one line naming it", bad, b.code, b.stderr)
				}
			}
		})
	}
}

// TestGPUTestRootIgnoredByStarter: a plain user's launch through the setuid starter ignores
// $HPCCTL_TEST_GPU_ROOT: it binds nothing of the fake layout and says that it found no driver.
func TestGPUTestRootIgnoredByStarter(t *testing.T) {
	st := starterSetup(t)
	e := ltSetup(t)
	full, _ := gpuLayouts(t, e)
	r := st.run(t, false, []string{"HPCCTL_TEST_GPU_ROOT=" + full}, "hpcctl", "exec", "--contain", "--nv", st.img, "sh", "-c", "ls -A /.singularity.d/libs 2>/dev/null; ls /dev; echo done")
	if r.Code != 0 || !strings.HasSuffix(r.Stdout, "done\n") {
		t.Fatalf("exec --nv through the starter: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "nvidia") || strings.Contains(r.Stdout, "libcuda") {
		t.Errorf("the starter's launch bound the fake layout of $HPCCTL_TEST_GPU_ROOT:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "warning: --nv: no NVIDIA driver") {
		t.Errorf("stderr %q, want the no-driver warning", r.Stderr)
	}
}
