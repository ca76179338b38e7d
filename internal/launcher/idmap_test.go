package launcher

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// A shape that maps more than the user's own ID (--fakeroot with subordinate IDs) is left to
// newuidmap/newgidmap after the start, and its setup process gets every capability as ambient
// ones (it is unmapped at its execve); a single-ID map is written by the kernel at clone time.
func TestSysProcAttrMaps(t *testing.T) {
	ns := spec.Namespaces{User: true, Mount: true}
	single := spec.Shape{Namespaces: ns, UIDMap: []spec.IDMap{{ContainerID: 0, HostID: 1000, Size: 1}}, GIDMap: []spec.IDMap{{ContainerID: 0, HostID: 100, Size: 1}}}
	ranged := single
	ranged.UIDMap = append(ranged.UIDMap, spec.IDMap{ContainerID: 1, HostID: 100000, Size: 65536})
	ranged.GIDMap = append(ranged.GIDMap, spec.IDMap{ContainerID: 1, HostID: 100000, Size: 65536})

	a := sysProcAttr(single, Options{})
	if needsMapHelper(single) || len(a.UidMappings) != 1 || len(a.GidMappings) != 1 || len(a.AmbientCaps) != 3 {
		t.Errorf("single-ID shape: helper %v, maps %v %v, ambient %v", needsMapHelper(single), a.UidMappings, a.GidMappings, a.AmbientCaps)
	}
	a = sysProcAttr(ranged, Options{})
	if !needsMapHelper(ranged) || len(a.UidMappings) != 0 || len(a.GidMappings) != 0 {
		t.Errorf("ranged shape: helper %v, maps %v %v (want none: newuidmap writes them)", needsMapHelper(ranged), a.UidMappings, a.GidMappings)
	}
	if len(a.AmbientCaps) <= unix.CAP_SETUID || a.AmbientCaps[unix.CAP_CHOWN] != unix.CAP_CHOWN {
		t.Errorf("ranged shape: ambient %v, want every capability", a.AmbientCaps)
	}
	if needsMapHelper(spec.Shape{Namespaces: spec.Namespaces{Mount: true}}) {
		t.Error("root's shape needs a helper")
	}
}
