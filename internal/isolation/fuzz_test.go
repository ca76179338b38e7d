package isolation

import (
	"path"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// FuzzParseEnvFile: any --env-file content gives NAME=value settings or an error naming the file
// and line; never a panic. Seeds: testdata/fuzz/FuzzParseEnvFile.
func FuzzParseEnvFile(f *testing.F) {
	f.Add("# comment\nexport A=1\nB=\"two words\"\nC='x'\n")
	f.Fuzz(func(t *testing.T, content string) {
		kv, err := ParseEnvFile("env", content)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "env:") && !strings.HasPrefix(err.Error(), "read env") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		for _, s := range kv {
			if name, _, ok := strings.Cut(s, "="); !ok || name == "" {
				t.Errorf("setting %q is not NAME=value", s)
			}
		}
	})
}

// FuzzParseBinds: any -B value gives binds whose paths are absolute and clean, never onto the
// container's root, or an error; never a panic. Seeds: testdata/fuzz/FuzzParseBinds.
func FuzzParseBinds(f *testing.F) {
	f.Add("/data:/mnt:ro,/scratch")
	f.Fuzz(func(t *testing.T, s string) {
		binds, err := ParseBinds([]string{s}, "/work")
		if err != nil {
			return
		}
		for _, b := range binds {
			for _, p := range []string{b.Source, b.Destination} {
				if !path.IsAbs(p) || path.Clean(p) != p {
					t.Errorf("%q: path %q is not absolute and clean", s, p)
				}
			}
			if b.Destination == "/" {
				t.Errorf("%q: a bind onto /", s)
			}
			m := spec.Mount{Kind: spec.KindBind, Source: b.Source, Destination: b.Destination}
			sp := spec.Spec{Mounts: []spec.Mount{m}}
			if err := sp.Validate(); err != nil && strings.Contains(err.Error(), "mount 1") {
				t.Errorf("%q: the Spec refuses what ParseBinds accepted: %v", s, err)
			}
		}
	})
}
