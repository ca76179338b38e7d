package cdi

import (
	"slices"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/gpu"
	"github.com/hpcctl/hpcctl/internal/gpu/gputest"
)

const cdiSpec = `cdiVersion: "0.6.0"
kind: example.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/fakegpu0
          hostPath: ROOT/dev/nvidia0
      env:
        - FAKE_GPU=0
  - name: "1"
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia1
containerEdits:
  env:
    - FAKE_DRIVER=1
  mounts:
    - hostPath: ROOT/lib/libcuda.so.1
      containerPath: /usr/lib/fake/libcuda.so.1
      options: [ro, nosuid, bind]
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-ctk
`

func TestCDI(t *testing.T) {
	root := t.TempDir()
	l := gputest.Layout{Devices: []string{"nvidia0"}, CDI: map[string]string{"example.yaml": cdiSpec}}
	if _, err := l.Make(root); err != nil {
		t.Fatal(err)
	}
	dirs := gpu.TestHost(root, "").CDIDirs
	f, err := Resolve(dirs, []string{"example.com/gpu=0", "example.com/gpu=1"})
	if err != nil {
		t.Fatal(err)
	}
	got := gputest.Binds(f.Mounts, root)
	want := []string{
		"/dev/fakegpu0 <- ROOT/dev/nvidia0",
		"/dev/nvidia1 <- /dev/nvidia1",
		"/usr/lib/fake/libcuda.so.1 <- ROOT/lib/libcuda.so.1 ro",
	}
	if !slices.Equal(got, want) {
		t.Errorf("binds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The spec's own edits apply once for its two devices.
	if !slices.Equal(f.Env, []string{"FAKE_DRIVER=1", "FAKE_GPU=0"}) {
		t.Errorf("env %q", f.Env)
	}
	if len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "nvidia-ctk") {
		t.Errorf("notes %q, want one about the hook", f.Notes)
	}
	for _, tc := range []struct{ name, want string }{
		{"gpu0", "not a CDI device name"},
		{"example.com/gpu=7", "no such CDI device"},
		{"other.com/x=0", "defined: example.com/gpu=0, example.com/gpu=1"},
	} {
		if _, err := Resolve(dirs, []string{tc.name}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q): %v, want %q", tc.name, err, tc.want)
		}
	}
}
