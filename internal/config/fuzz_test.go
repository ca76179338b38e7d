package config

import (
	"strings"
	"testing"
)

// FuzzParse: any hpcctl.conf text gives a Config or one line naming the file; never a panic.
// The seeds (testdata/fuzz/FuzzParse) are every directive, bad types, unknown keys and broken
// TOML.
func FuzzParse(f *testing.F) {
	f.Add([]byte("mount_home = false\nbind_paths = [\"/scratch:/scratch:ro\"]\n[profile.gpu]\nbase = \"isolate\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("hpcctl.conf", data)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "hpcctl.conf") {
				t.Errorf("error %q does not name the file", msg)
			}
			return
		}
		if c.Path != "hpcctl.conf" || c.DefaultProfile == "" {
			t.Errorf("parsed %+v", c)
		}
	})
}
