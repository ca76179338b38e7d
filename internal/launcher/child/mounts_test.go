package child

import (
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestCoveringKind(t *testing.T) {
	ms := []spec.Mount{
		{Kind: spec.KindProc, Destination: "/proc"},
		{Kind: spec.KindBind, Source: "/proc/sys", SourceInside: true, Destination: "/proc/sys"},
		{Kind: spec.KindTmpfs, Destination: "/dev"},
		{Kind: spec.KindBind, Source: "/dev/null", Destination: "/dev/null"},
		{Kind: spec.KindSymlink, Source: "/proc/self/fd", Destination: "/dev/fd"},
		{Kind: spec.KindBind, Source: "/data", Destination: "/data"},
		{Kind: spec.KindBind, Source: "/x", Destination: "/data/x"},
		{Kind: spec.KindTmpfs, Destination: "/home/a"},
		{Kind: spec.KindBind, Source: "/y", Destination: "/home/a/y"},
		{Kind: spec.KindBind, Source: "/z", Destination: "/devz"},
		{Kind: spec.KindTmpfs, Destination: "/dev"},
	}
	want := []spec.MountKind{"", spec.KindProc, "", spec.KindTmpfs, spec.KindTmpfs, "", spec.KindBind, "", spec.KindTmpfs, "", ""}
	for i := range ms {
		if got := coveringKind(ms, i); got != want[i] {
			t.Errorf("%s: %q, want %q", ms[i].Destination, got, want[i])
		}
	}
}
