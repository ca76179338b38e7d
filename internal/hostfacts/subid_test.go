package hostfacts

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

func TestSubordinateRange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "subuid")
	content := "# comment\nbob:100000:65536\nalice:bad:10\nalice:200000:0\nalice:300000:1000\nalice:400000:5\n2000:500000:10\n"
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		id   int
		want *isolation.IDRange
	}{
		{"alice", 1001, &isolation.IDRange{Start: 300000, Count: 1000}}, // the first valid range
		{"bob", 1002, &isolation.IDRange{Start: 100000, Count: 65536}},
		{"carol", 2000, &isolation.IDRange{Start: 500000, Count: 10}}, // by numeric ID
		{"dave", 1003, nil},
	} {
		if got := SubordinateRange(p, tt.name, tt.id); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got := SubordinateRange(filepath.Join(t.TempDir(), "missing"), "alice", 1); got != nil {
		t.Errorf("missing file: %+v", got)
	}
}
