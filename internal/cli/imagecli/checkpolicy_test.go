package imagecli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/sign"
)

// What hpcctl passes (cli.PolicyArgs) is what the companion checks.
func TestPolicyFlags(t *testing.T) {
	tests := []struct {
		name string
		sig  config.Signature
		want sign.Policy
	}{
		{"empty", config.Signature{}, sign.Policy{}},
		{"require signed", config.Signature{RequireSigned: true, TrustedKeysDir: "/etc/hpcctl/keys"},
			sign.Policy{RequireSigned: true, TrustedKeysDir: "/etc/hpcctl/keys"}},
		{"allowed paths", config.Signature{AllowedPaths: []string{"/a", "/b,c", "--x"}},
			sign.Policy{AllowedPaths: []string{"/a", "/b,c", "--x"}}},
		{"all", config.Signature{RequireSigned: true, TrustedKeysDir: "/k", AllowedPaths: []string{"/a"}},
			sign.Policy{RequireSigned: true, TrustedKeysDir: "/k", AllowedPaths: []string{"/a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got sign.Policy
			cmd := &cobra.Command{Use: cli.CheckPolicyVerb}
			addPolicyFlags(cmd, &got)
			if err := cmd.ParseFlags(cli.PolicyArgs(tc.sig, "-image.sif")); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("policy = %+v, want %+v", got, tc.want)
			}
			if rest := cmd.Flags().Args(); !reflect.DeepEqual(rest, []string{"-image.sif"}) {
				t.Errorf("arguments = %q, want the image name alone", rest)
			}
		})
	}
}

func TestCheckPolicyIsHidden(t *testing.T) {
	code, out, _ := run(t, "--help")
	if code != 0 || !strings.Contains(out, "verify") || strings.Contains(out, cli.CheckPolicyVerb) {
		t.Errorf("--help (status %d) should list verify and not %s:\n%s", code, cli.CheckPolicyVerb, out)
	}
}
