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
