package isolation

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestFakeroot(t *testing.T) {
	ranged := &Fakeroot{SubUID: &IDRange{Start: 100000, Count: 65536}, SubGID: &IDRange{Start: 200000, Count: 1000}}
	for _, tt := range []struct {
		name     string
		host     Host
		fr       *Fakeroot
		uid, gid []spec.IDMap
		root     bool
	}{
		{"ranges", plainUser(), ranged,
			[]spec.IDMap{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}},
			[]spec.IDMap{{ContainerID: 0, HostID: 100, Size: 1}, {ContainerID: 1, HostID: 200000, Size: 1000}}, true},
		{"no ranges", plainUser(), &Fakeroot{},
			[]spec.IDMap{{ContainerID: 0, HostID: 1000, Size: 1}}, []spec.IDMap{{ContainerID: 0, HostID: 100, Size: 1}}, true},
		{"off", plainUser(), nil,
			[]spec.IDMap{{ContainerID: 1000, HostID: 1000, Size: 1}}, []spec.IDMap{{ContainerID: 100, HostID: 100, Size: 1}}, false},
		{"real root", Host{UID: 0, GID: 0, User: User{Name: "root", Home: "/root"}, Cwd: "/root"}, ranged, nil, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Fakeroot: tt.fr, Scratch: []string{"/scratch"}}
			s, err := buildDefault(tt.host, o, img, []string{"id"})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.UIDMap, tt.uid) || !reflect.DeepEqual(s.GIDMap, tt.gid) {
				t.Errorf("maps %+v %+v, want %+v %+v", s.UIDMap, s.GIDMap, tt.uid, tt.gid)
			}
			if sh := ShapeFor(Profiles()[ProfileDefault], tt.host.UID, tt.host.GID, tt.fr); !sh.Equal(s.Shape()) {
				t.Errorf("ShapeFor %+v differs from the Spec's %+v: a prestarted process would be wasted", sh, s.Shape())
			}
			if s.KeepCapabilities != tt.root {
				t.Errorf("KeepCapabilities %v, want %v (root inside keeps them)", s.KeepCapabilities, tt.root)
			}
			if tt.root != (s.Identity != nil && strings.HasPrefix(s.Identity.Passwd, "root:x:0:0:")) {
				t.Errorf("identity %+v", s.Identity)
			}
			// A tmpfs's uid= is read inside the namespace: root's there under --fakeroot.
			for _, m := range s.Mounts {
				if m.Destination == "/scratch" && tt.root != strings.Contains(m.Data, "uid=0,gid=0") {
					t.Errorf("scratch tmpfs %q", m.Data)
				}
			}
		})
	}
}

func TestWritableSandbox(t *testing.T) {
	sandbox := Image{Path: "/home/alice/sb", Backend: spec.BackendDir}
	s, err := buildDefault(plainUser(), Options{WritableSandbox: true}, sandbox, []string{"sh"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.RootFS.Writable || !s.WritableRoot || len(s.Overlays) != 0 {
		t.Errorf("rootfs %+v, writable root %v, overlays %v", s.RootFS, s.WritableRoot, s.Overlays)
	}
	for _, tt := range []struct {
		name string
		o    Options
		img  Image
		want string
	}{
		{"a SIF", Options{WritableSandbox: true}, img, "--writable: /images/py.sif is an image file without a writable overlay partition"},
		{"with --writable-tmpfs", Options{WritableSandbox: true, Writable: true}, sandbox, "leave out --writable-tmpfs and --overlay"},
		{"with an overlay", Options{WritableSandbox: true, Overlays: []spec.Overlay{{Dir: "/o", ReadOnly: true}}}, sandbox, "leave out --writable-tmpfs and --overlay"},
		{"with an image bind", Options{WritableSandbox: true, Binds: []Bind{{Source: "/d/data.sqfs", Destination: "/data", Image: &ImageBind{Src: "/"}}}}, sandbox, "--writable: the image bind of /d/data.sqfs is not supported"},
	} {
		if _, err := buildDefault(plainUser(), tt.o, tt.img, []string{"sh"}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A Spec that asks for a writable image file or overlays over a writable sandbox is invalid.
	bad := *s
	bad.RootFS.Backend, bad.RootFS.Writable = spec.BackendSquashfuse, true
	if bad.Validate() == nil {
		t.Error("a writable squashfs root validates")
	}
	bad = *s
	bad.Overlays = []spec.Overlay{{Dir: "/o"}}
	if bad.Validate() == nil {
		t.Error("overlays over a writable sandbox validate")
	}
	bad = *s
	bad.Images = []spec.Image{{Path: "/d/data.sqfs"}}
	if bad.Validate() == nil {
		t.Error("extra images over a writable sandbox validate")
	}
}
