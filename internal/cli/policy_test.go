package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
)

func TestPolicyArgs(t *testing.T) {
	tests := []struct {
		name string
		sig  config.Signature
		want []string
	}{
		{"require signed", config.Signature{RequireSigned: true, TrustedKeysDir: "/etc/hpcctl/keys"},
			[]string{"--require-signed", "--trusted-keys-dir", "/etc/hpcctl/keys", "--", "/x/-a.sif"}},
		{"allowed paths", config.Signature{AllowedPaths: []string{"/a", "/b c"}},
			[]string{"--allowed-path", "/a", "--allowed-path", "/b c", "--", "/x/-a.sif"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PolicyArgs(tc.sig, "/x/-a.sif"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PolicyArgs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPolicyEmpty(t *testing.T) {
	tests := []struct {
		sig  config.Signature
		want bool
	}{
		{config.Signature{}, true},
		{config.Signature{TrustedKeysDir: "/k", AllowedPaths: []string{}}, true}, // keys alone ask for nothing
		{config.Signature{RequireSigned: true, TrustedKeysDir: "/k"}, false},
		{config.Signature{AllowedPaths: []string{"/a"}}, false},
	}
	for _, tc := range tests {
		if got := policyEmpty(tc.sig); got != tc.want {
			t.Errorf("policyEmpty(%+v) = %v, want %v", tc.sig, got, tc.want)
		}
	}
}

// The policy refuses what cannot carry a signature before looking for the companion; an empty
// policy checks nothing at all (not even a descriptor that is not an image).
func TestCheckPolicyWithoutCompanion(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no hpcctl-image anywhere
	dir := t.TempDir()
	sqfs := filepath.Join(dir, "img.sqfs")
	if err := os.WriteFile(sqfs, []byte("hsqs and more"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	if !isSquashfs(open(sqfs)) || isSquashfs(open(dir)) {
		t.Fatal("isSquashfs: want true for the squashfs magic only")
	}
	signed := config.Signature{RequireSigned: true, TrustedKeysDir: "/k"}
	tests := []struct {
		name string
		sig  config.Signature
		f    *os.File
		kind imageKind
		want []string // nil: allowed
	}{
		{"empty policy", config.Signature{}, open(sqfs), kindSIF, nil},
		{"sandbox directory", signed, open(dir), kindDir, []string{dir, "is not a signed SIF", "sandbox directory", "the site requires signed images"}},
		{"bare squashfs", signed, open(sqfs), kindSquashfs, []string{sqfs, "is not a signed SIF", "bare squashfs", "the site requires signed images"}},
		{"companion missing", signed, open(sqfs), kindSIF, []string{"signature policy cannot be checked", Companion}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPolicy(context.Background(), &Globals{Stderr: io.Discard}, tc.sig, tc.f, tc.kind)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("allowed, want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q: want one line", err)
			}
		})
	}
}
