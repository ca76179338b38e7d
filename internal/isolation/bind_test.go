package isolation

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestParseBinds(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  []Bind
		err   bool
	}{
		{"source only", []string{"/data"}, []Bind{{"/data", "/data", false, nil}}, false},
		{"source and destination", []string{"/data:/mnt"}, []Bind{{"/data", "/mnt", false, nil}}, false},
		{"read-only", []string{"/data:/mnt:ro"}, []Bind{{"/data", "/mnt", true, nil}}, false},
		{"read-write", []string{"/data:/mnt:rw"}, []Bind{{"/data", "/mnt", false, nil}}, false},
		{"empty destination keeps source", []string{"/data::ro"}, []Bind{{"/data", "/data", true, nil}}, false},
		{"comma list", []string{"/a,/b:/c:ro"}, []Bind{{"/a", "/a", false, nil}, {"/b", "/c", true, nil}}, false},
		{"repeated flags", []string{"/a", "/b"}, []Bind{{"/a", "/a", false, nil}, {"/b", "/b", false, nil}}, false},
		{"relative source", []string{"data:/d"}, []Bind{{"/work/data", "/d", false, nil}}, false},
		{"cleaned", []string{"/a/../b/:/c/./d/"}, []Bind{{"/b", "/c/d", false, nil}}, false},
		{"empty items skipped", []string{"/a,,"}, []Bind{{"/a", "/a", false, nil}}, false},
		{"bad option", []string{"/a:/b:rx"}, nil, true},
		{"relative destination", []string{"/a:b"}, nil, true},
		{"too many fields", []string{"/a:/b:ro:x"}, nil, true},
		{"empty source", []string{":/b"}, nil, true},
		{"onto the root", []string{"/data:/"}, nil, true},
		{"onto the root, cleaned", []string{"/data:/x/.."}, nil, true},
		{"the host root onto itself", []string{"/"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBinds(tt.specs, "/work")
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseImageBinds: image-src= and id= make a read-only bind of a directory inside an image
// file (Apptainer's syntax), also through --mount.
func TestParseImageBinds(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Bind
	}{
		{"img.sqfs:/data:image-src=/", Bind{"/work/img.sqfs", "/data", true, &ImageBind{Src: "/"}}},
		{"/i.sif:/data:image-src=/sub/../x", Bind{"/i.sif", "/data", true, &ImageBind{Src: "/x"}}},
		{"/i.sif:/data:id=4", Bind{"/i.sif", "/data", true, &ImageBind{Src: "/", Partition: 4}}},
		{"/i.sif:/data:ro,id=4,image-src=/d", Bind{"/i.sif", "/data", true, &ImageBind{Src: "/d", Partition: 4}}},
	} {
		got, err := ParseBinds([]string{tt.in}, "/work")
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
			t.Errorf("ParseBinds(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	got, err := ParseMounts([]string{"type=bind,src=/i.sqfs,dst=/d,image-src=/x"}, "/")
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], Bind{"/i.sqfs", "/d", true, &ImageBind{Src: "/x"}}) {
		t.Errorf("--mount with image-src: %+v, %v", got, err)
	}
}

// TestParseOverlaysWith: image files are read-only layers with or without :ro, numbered in
// order; they do not count as writable overlays.
func TestParseOverlaysWith(t *testing.T) {
	isImage := func(p string) bool { return strings.HasSuffix(p, ".sqfs") }
	got, err := ParseOverlaysWith([]string{"a.sqfs", "/ov", "/b.sqfs:ro"}, "/w", isImage)
	want := []spec.Overlay{{Dir: "/w/a.sqfs", ReadOnly: true, Image: 1}, {Dir: "/ov"}, {Dir: "/b.sqfs", ReadOnly: true, Image: 2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseOverlaysWith([]string{"/a.sqfs:rw"}, "/", isImage); err == nil {
		t.Error("a writable image overlay accepted")
	}
	if _, err := ParseOverlaysWith([]string{"/a.sqfs", "/x", "/y"}, "/", isImage); err == nil {
		t.Error("two writable directories accepted")
	}
}
