package launcher

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// No user-namespace shape has Go write the ID maps at clone time (that makes Go fork a full copy
// of hpcctl): the setup process is started with vfork and mapped after its exec, directly for the
// user's own ID and through newuidmap/newgidmap for more (--fakeroot with subordinate IDs), whose
// setup process gets every capability as ambient ones.
func TestSysProcAttrMaps(t *testing.T) {
	ns := spec.Namespaces{User: true, Mount: true}
	single := spec.Shape{Namespaces: ns, UIDMap: []spec.IDMap{{ContainerID: 0, HostID: 1000, Size: 1}}, GIDMap: []spec.IDMap{{ContainerID: 0, HostID: 100, Size: 1}}}
	ranged := single
	ranged.UIDMap = append(ranged.UIDMap, spec.IDMap{ContainerID: 1, HostID: 100000, Size: 65536})
	ranged.GIDMap = append(ranged.GIDMap, spec.IDMap{ContainerID: 1, HostID: 100000, Size: 65536})
	const vfork = unix.CLONE_VM | unix.CLONE_VFORK

	a := sysProcAttr(single, Options{})
	if needsMapHelper(single) || len(a.UidMappings) != 0 || len(a.GidMappings) != 0 || len(a.AmbientCaps) != 3 || a.Cloneflags&vfork != vfork {
		t.Errorf("single-ID shape: helper %v, maps %v %v, ambient %v, clone flags %#x", needsMapHelper(single), a.UidMappings, a.GidMappings, a.AmbientCaps, a.Cloneflags)
	}
	if got, want := mapLines(ranged.UIDMap), "0 1000 1\n1 100000 65536\n"; got != want {
		t.Errorf("mapLines = %q, want %q", got, want)
	}
	a = sysProcAttr(ranged, Options{})
	if !needsMapHelper(ranged) || len(a.UidMappings) != 0 || len(a.GidMappings) != 0 {
		t.Errorf("ranged shape: helper %v, maps %v %v (want none: newuidmap writes them)", needsMapHelper(ranged), a.UidMappings, a.GidMappings)
	}
	if len(a.AmbientCaps) <= unix.CAP_SETUID || a.AmbientCaps[unix.CAP_CHOWN] != unix.CAP_CHOWN {
		t.Errorf("ranged shape: ambient %v, want every capability", a.AmbientCaps)
	}
	root := spec.Shape{Namespaces: spec.Namespaces{Mount: true}}
	if needsMapHelper(root) || sysProcAttr(root, Options{}).Cloneflags&vfork != 0 {
		t.Error("root's shape needs a helper, or asks for vfork itself (Go does that without a user namespace)")
	}
}

// The starter gets an empty environment (it re-executes itself to clear any other), the setup
// stage only TZ= (so that no package initialisation reads /etc/localtime).
func TestStageEnvironment(t *testing.T) {
	cmd := &exec.Cmd{Env: []string{"TZ="}}
	useStarter(cmd, spec.Shape{}, Options{Starter: "/x/hpcctl-starter"})
	if len(cmd.Env) != 0 || cmd.Env == nil {
		t.Errorf("starter environment %q, want empty (not inherited)", cmd.Env)
	}
}
