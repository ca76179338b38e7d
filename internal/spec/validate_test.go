package spec

import (
	"strings"
	"testing"
)

func valid() *Spec {
	return &Spec{
		Namespaces: Namespaces{User: true, Mount: true},
		UIDMap:     []IDMap{{1000, 1000, 1}},
		GIDMap:     []IDMap{{100, 100, 1}},
		RootFS:     RootFS{Backend: BackendSquashfuse, Image: "/i.sif", Offset: 4096},
		Mounts:     []Mount{{Kind: KindBind, Source: "/home/a", Destination: "/home/a"}, {Kind: KindTmpfs, Destination: "/tmp"}},
		Env:        []string{"PATH=/bin", "EMPTY="},
		Args:       []string{"true"},
		Cwd:        "/home/a",
	}
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"no args", func(s *Spec) { s.Args = nil }, "no program"},
		{"relative cwd", func(s *Spec) { s.Cwd = "home" }, "working directory"},
		{"unclean cwd", func(s *Spec) { s.Cwd = "/home/../etc" }, "working directory"},
		{"bad fallback", func(s *Spec) { s.CwdFallback = "x" }, "fallback"},
		{"no image", func(s *Spec) { s.RootFS.Image = "" }, "no image"},
		{"bad backend", func(s *Spec) { s.RootFS.Backend = "nfs" }, "backend"},
		{"negative offset", func(s *Spec) { s.RootFS.Offset = -1 }, "negative"},
		{"userns without maps", func(s *Spec) { s.UIDMap = nil }, "maps"},
		{"maps without userns", func(s *Spec) { s.Namespaces.User = false }, "without a user namespace"},
		{"no mount ns", func(s *Spec) { s.Namespaces.Mount = false }, "mount namespace"},
		{"relative destination", func(s *Spec) { s.Mounts[0].Destination = "x" }, "mount 1: destination"},
		{"dotdot destination", func(s *Spec) { s.Mounts[1].Destination = "/a/../b" }, "mount 2: destination"},
		{"relative source", func(s *Spec) { s.Mounts[0].Source = "data" }, "bind source"},
		{"bad kind", func(s *Spec) { s.Mounts[1].Kind = "nfs" }, "kind"},
		{"bad env", func(s *Spec) { s.Env = append(s.Env, "X") }, "NAME=value"},
		{"symlink without target", func(s *Spec) { s.Mounts[1] = Mount{Kind: KindSymlink, Destination: "/dev/fd"} }, "symlink"},
		{"relative overlay", func(s *Spec) { s.Overlays = []Overlay{{Dir: "ov"}} }, "overlay"},
		{"bind onto the root", func(s *Spec) { s.Mounts[0].Destination = "/" }, "onto /"},
		{"control character in host name", func(s *Spec) { s.Namespaces.UTS, s.Hostname = true, "a\x1b[2Jb" }, "host name"},
		{"two writable overlays", func(s *Spec) { s.Overlays = []Overlay{{Dir: "/a"}, {Dir: "/b"}} }, "more than one writable"},
		{"image mount without its image", func(s *Spec) { s.Mounts[1] = Mount{Kind: KindImage, Source: "/", Destination: "/d", Image: 1} }, "image 1 of 0"},
		{"image index on a bind", func(s *Spec) { s.Mounts[0].Image = 1; s.Images = []Image{{Path: "/i.sqfs"}} }, "bind mount at"},
		{"relative path inside an image", func(s *Spec) {
			s.Images = []Image{{Path: "/i.sqfs"}}
			s.Mounts[1] = Mount{Kind: KindImage, Source: "sub", Destination: "/d", Image: 1}
		}, "path inside the image"},
		{"writable image overlay", func(s *Spec) {
			s.Images = []Image{{Path: "/i.sqfs"}}
			s.Overlays = []Overlay{{Dir: "/i.sqfs", Image: 1}}
		}, "read-only"},
		{"relative image", func(s *Spec) { s.Images = []Image{{Path: "i.sqfs"}} }, "absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.change(s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCheckHostname(t *testing.T) {
	for _, ok := range []string{"node1", "hpcctl", "a.b-c.d", "N-1", strings.Repeat("a", 63)} {
		if err := CheckHostname(ok); err != nil {
			t.Errorf("CheckHostname(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\nb", "a\x00", "-a", "a-", "a..b", ".a", "a/b", "ä", strings.Repeat("a", 64), strings.Repeat("a.", 32) + "a"} {
		if err := CheckHostname(bad); err == nil {
			t.Errorf("CheckHostname(%q) accepted it", bad)
		}
	}
}

func TestCheckEnvName(t *testing.T) {
	for _, ok := range []string{"A", "_", "a_1", "PATH", "_X9"} {
		if err := CheckEnvName(ok); err != nil {
			t.Errorf("CheckEnvName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "BAD NAME", "1A", "A-B", "A.B", "A=B", "\x00", "é"} {
		if err := CheckEnvName(bad); err == nil {
			t.Errorf("CheckEnvName(%q) accepted it", bad)
		}
	}
}
