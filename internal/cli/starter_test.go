package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestStarterSpec(t *testing.T) {
	orig := spec.Shape{Namespaces: spec.Namespaces{User: true, Mount: true, PID: true},
		UIDMap: []spec.IDMap{{ContainerID: 5, HostID: 5, Size: 1}}, GIDMap: []spec.IDMap{{ContainerID: 5, HostID: 5, Size: 1}}}
	s := &spec.Spec{Namespaces: orig.Namespaces, UIDMap: orig.UIDMap, GIDMap: orig.GIDMap}
	starterSpec(s)
	if s.Namespaces != (spec.Namespaces{Mount: true, PID: true}) || s.UIDMap != nil || s.GIDMap != nil || !s.NoNewPrivileges {
		t.Errorf("starterSpec: %+v", s)
	}
	// The stage prestarted for the starter must fit the Spec the starter gets.
	if sh := starterShape(orig); !sh.Equal(s.Shape()) {
		t.Errorf("starterShape %+v does not fit the Spec's %+v", sh, s.Shape())
	}
}

func TestStarterHint(t *testing.T) {
	eperm := fmt.Errorf("start the container: %w", unix.EPERM)
	refused := &launchOptions{starter: starterChoice{why: "the setuid starter mounts only images you cannot change (x)", refused: true}}
	if err := starterHint(refused, eperm); !strings.Contains(err.Error(), "cannot change") || !errors.Is(err, unix.EPERM) {
		t.Errorf("refused image, user namespaces disabled: %v", err)
	}
	if err := starterHint(&launchOptions{starter: starterChoice{why: "root"}}, eperm); err != eperm { //nolint:errorlint // the very error, unwrapped, must come back
		t.Errorf("no refusal: %v", err)
	}
	other := errors.New("other")
	if err := starterHint(refused, other); err != other { //nolint:errorlint // the very error must come back
		t.Errorf("another error: %v", err)
	}
}

func TestChooseStarterFlags(t *testing.T) {
	if os.Getuid() == 0 {
		if c := chooseStarter(&launchOptions{}, nil); c.path != "" || !strings.Contains(c.why, "root") {
			t.Errorf("as root: %+v", c)
		}
		return
	}
	for _, c := range []struct {
		o    launchOptions
		want string
	}{
		{launchOptions{userns: true}, "--userns"},
		{launchOptions{backend: "squashfuse"}, "--backend squashfuse"},
		{launchOptions{unsquash: true}, "--unsquash"},
	} {
		if got := chooseStarter(&c.o, nil); got.path != "" || !strings.Contains(got.why, c.want) {
			t.Errorf("%+v: %+v", c.o, got)
		}
	}
}
