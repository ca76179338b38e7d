package isolation

import (
	"slices"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// TestDevices: the GPU flags' binds come after the user's (so that a bind of /dev does not hide
// them), their variables are set, and LD_LIBRARY_PATH ends in the driver's library directory
// after the image's own, under every profile.
func TestDevices(t *testing.T) {
	dev := spec.Mount{Kind: spec.KindBind, Source: "/dev/nvidia0", Destination: "/dev/nvidia0", Optional: true}
	lib := spec.Mount{Kind: spec.KindBind, Source: "/usr/lib/libcuda.so.1", Destination: "/.singularity.d/libs/libcuda.so.1", ReadOnly: true}
	for _, tc := range []struct {
		profile  string
		imageEnv []string
		wantLD   string
	}{
		{ProfileDefault, []string{"PATH=/opt/bin"}, "/.singularity.d/libs"},
		{ProfileIsolate, []string{"PATH=/opt/bin", "LD_LIBRARY_PATH=/opt/lib:/opt/lib64"}, "/opt/lib:/opt/lib64:/.singularity.d/libs"},
		{ProfileContainAll, []string{"LD_LIBRARY_PATH="}, "/.singularity.d/libs"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			h := plainUser()
			h.Env = append(h.Env, "LD_LIBRARY_PATH=/host/lib")
			im := img
			im.Env = tc.imageEnv
			o := Options{
				Binds:   []Bind{{Source: "/data", Destination: "/data"}},
				Devices: []spec.Mount{lib, dev}, DeviceEnv: []string{"FAKE_GPU=0"}, DeviceLibs: "/.singularity.d/libs",
			}
			s, err := Build(Profiles()[tc.profile], Policy{}, h, o, im, []string{"true"})
			if err != nil {
				t.Fatal(err)
			}
			d := destinations(s)
			i, j := slices.Index(d, "/data"), slices.Index(d, lib.Destination)
			if i < 0 || j < 0 || j < i || d[j+1] != dev.Destination {
				t.Errorf("mounts %q: want the user's bind, then the library, then the device", d)
			}
			if !slices.Contains(s.Env, "LD_LIBRARY_PATH="+tc.wantLD) {
				t.Errorf("env %q lacks LD_LIBRARY_PATH=%s", s.Env, tc.wantLD)
			}
			if !slices.Contains(s.Env, "FAKE_GPU=0") {
				t.Errorf("env %q lacks the device's variable", s.Env)
			}
		})
	}
	// No GPU flag: LD_LIBRARY_PATH stays the image's business.
	s, err := buildDefault(plainUser(), Options{}, img, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range s.Env {
		if strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			t.Errorf("without devices: %s", kv)
		}
	}
}
