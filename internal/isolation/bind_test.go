package isolation

import (
	"reflect"
	"testing"
)

func TestParseBinds(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  []Bind
		err   bool
	}{
		{"source only", []string{"/data"}, []Bind{{"/data", "/data", false}}, false},
		{"source and destination", []string{"/data:/mnt"}, []Bind{{"/data", "/mnt", false}}, false},
		{"read-only", []string{"/data:/mnt:ro"}, []Bind{{"/data", "/mnt", true}}, false},
		{"read-write", []string{"/data:/mnt:rw"}, []Bind{{"/data", "/mnt", false}}, false},
		{"empty destination keeps source", []string{"/data::ro"}, []Bind{{"/data", "/data", true}}, false},
		{"comma list", []string{"/a,/b:/c:ro"}, []Bind{{"/a", "/a", false}, {"/b", "/c", true}}, false},
		{"repeated flags", []string{"/a", "/b"}, []Bind{{"/a", "/a", false}, {"/b", "/b", false}}, false},
		{"relative source", []string{"data:/d"}, []Bind{{"/work/data", "/d", false}}, false},
		{"cleaned", []string{"/a/../b/:/c/./d/"}, []Bind{{"/b", "/c/d", false}}, false},
		{"empty items skipped", []string{"/a,,"}, []Bind{{"/a", "/a", false}}, false},
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
