package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFile runs hpcctl with a site configuration (--config and $HPCCTL_CONFIG), as root and
// as the plain user: profiles and namespaces the site does not allow are refused with one line,
// mount toggles, bind paths, user bind control, the default profile and a site-defined profile
// take effect, and a bad file is an error naming its line.
func TestConfigFile(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			site := filepath.Join(dir, "site")
			if err := os.Mkdir(site, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(site, "f"), []byte("site-data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			write := func(name, text string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			strict := write("strict.conf", `
allowed_profiles = ["default", "contain", "batch"]
allowed_namespaces = ["pid", "ipc", "uts"]
bind_paths = ["`+site+`:/site:ro"]
mount_home = false

[profile.batch]
base = "containall"
uts = true
hostname = "batch"
`)
			noBinds := write("nobinds.conf", "user_binds = false\ndefault_profile = \"isolate\"\n")
			broken := write("broken.conf", "mount_home = true\n\nmount_hmoe = false\n")
			tests := []struct {
				name   string
				env    []string
				args   []string
				code   int
				stdout string
				stderr string
			}{
				{"bind path, no home", nil, []string{"--config", strict, e.bb, "sh", "-c", "cat /site/f; ls $HOME 2>/dev/null | wc -l"}, 0, "site-data\n0\n", ""},
				{"env names the file", []string{"HPCCTL_CONFIG=" + strict}, []string{e.bb, "cat", "/site/f"}, 0, "site-data\n", ""},
				{"profile not allowed", nil, []string{"--config", strict, "--isolate", e.bb, "true"}, 255, "", `profile "isolate" is not allowed on this machine (allowed_profiles in ` + strict},
				{"namespace not allowed", nil, []string{"--config", strict, "--net", e.bb, "true"}, 255, "", "the net namespace"},
				{"site profile", nil, []string{"--config", strict, "--profile", "batch", e.bb, "sh", "-c", "hostname; test -e /site/f && echo site"}, 0, "batch\nsite\n", ""},
				{"unknown profile", nil, []string{"--config", strict, "--profile", "nope", e.bb, "true"}, 255, "", `unknown profile "nope"`},
				{"user binds off", nil, []string{"--config", noBinds, "-B", dir + ":/x", e.bb, "true"}, 255, "", "user_binds = false in " + noBinds},
				{"default profile from the file", nil, []string{"--config", noBinds, e.bb, "sh", "-c", "hostname"}, 0, "hpcctl\n", ""},
				{"broken file", nil, []string{"--config", broken, e.bb, "true"}, 255, "", broken + `:3: unknown directive "mount_hmoe"`},
				{"missing file", nil, []string{"--config", filepath.Join(dir, "none.conf"), e.bb, "true"}, 255, "", "none.conf"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := e.run(t, as, dir, tt.env, "", append([]string{"exec"}, tt.args...)...)
					if r.code != tt.code || r.stdout != tt.stdout || !strings.Contains(r.stderr, tt.stderr) {
						t.Errorf("exit %d (want %d), stdout %q (want %q), stderr %q (want %q)", r.code, tt.code, r.stdout, tt.stdout, r.stderr, tt.stderr)
					}
					if tt.code != 0 && (strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hpcctl: ")) {
						t.Errorf("want one line of error, got %q", r.stderr)
					}
				})
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}
