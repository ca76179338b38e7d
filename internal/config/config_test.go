package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func shipped(t *testing.T) []byte {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "etc", "hpcctl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestShippedFileListsTheDefaults: the repository's etc/hpcctl.conf parses as the defaults, and
// uncommenting every directive in it gives the defaults too (so its values are the true ones).
func TestShippedFileListsTheDefaults(t *testing.T) {
	b := shipped(t)
	c, err := Parse("hpcctl.conf", b)
	if err != nil {
		t.Fatal(err)
	}
	c.Path = ""
	if !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("commented file: %+v, want the defaults %+v", c, Defaults())
	}
	// "# key = value" and "# [table]" lines are directives; "##" lines are prose.
	directive := regexp.MustCompile(`^# (\[[a-z.]+\]|[a-z_]+ = .*)$`)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if directive.MatchString(l) {
			out = append(out, strings.TrimPrefix(l, "# "))
		}
	}
	text := strings.Join(out, "\n")
	c, err = Parse("uncommented", []byte(text))
	if err != nil {
		t.Fatalf("uncommented file:\n%s\n%v", text, err)
	}
	want := Defaults()
	want.Path = "uncommented"
	want.AllowedProfiles = BuiltinProfiles
	want.BindPaths, want.LimitContainerPaths, want.LimitContainerOwners, want.Signature.AllowedPaths = []string{}, []string{}, []string{}, []string{}
	want.KernelMountOwners = []string{}
	want.Profiles = map[string]ProfileDef{"batch": {Base: "containall", Hostname: ptr("batch")}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("uncommented file:\n got %+v\nwant %+v", c, want)
	}
	// Every directive of Config is listed.
	for _, key := range []string{"mount_home", "mount_tmp", "mount_proc", "mount_sys", "mount_dev", "mount_hostfiles", "bind_paths", "user_binds",
		"allowed_namespaces", "allowed_profiles", "default_profile", "limit_container_paths", "limit_container_owners", "allow_setuid", "kernel_mount_owners",
		"squashfuse", "cache_dir", "require_signed", "trusted_keys_dir", "allowed_paths", "job_variables"} {
		if !strings.Contains(text, key+" = ") {
			t.Errorf("etc/hpcctl.conf does not list %s", key)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestJobVariables(t *testing.T) {
	c, err := Parse("site.conf", []byte("[environment]\njob_variables = [\"SLURM_*\", \"MY_SITE_VAR\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SLURM_*", "MY_SITE_VAR"}; !reflect.DeepEqual(c.Environment.JobVariables, want) {
		t.Errorf("job_variables %q, want %q", c.Environment.JobVariables, want)
	}
	for _, bad := range []string{`""`, `"A=B"`, `"SLURM_["`, `"a b"`} {
		_, err := Parse("site.conf", []byte("\n[environment]\njob_variables = ["+bad+"]\n"))
		if err == nil || !strings.Contains(err.Error(), "site.conf:3: environment.job_variables") {
			t.Errorf("job_variables = [%s]: err %v, want one naming site.conf:3 and the key", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	c, err := Parse("site.conf", []byte(`
mount_home = false
bind_paths = ["/opt/site:/site:ro", "/scratch"]
allowed_profiles = ["contain", "isolate", "gpu"]
default_profile = "contain"
squashfuse = "/opt/bin/squashfuse_ll"

[signature]
require_signed = true
trusted_keys_dir = "/etc/hpcctl/keys"

[profile.gpu]
base = "containall"
net = true
umask = "077"
env = "allowlist"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MountHome || !c.MountTmp || c.DefaultProfile != "contain" || c.Squashfuse != "/opt/bin/squashfuse_ll" || !c.Signature.RequireSigned {
		t.Errorf("%+v", c)
	}
	if g := c.Profiles["gpu"]; g.Base != "containall" || *g.Net != true || *g.Umask != "077" || g.PID != nil {
		t.Errorf("profile gpu %+v", g)
	}
	if want := []string{"default", "contain", "containall", "isolate", "gpu"}; !reflect.DeepEqual(c.ProfileNames(), want) {
		t.Errorf("names %q", c.ProfileNames())
	}
}

func TestSessionTable(t *testing.T) {
	c, err := Parse("f.conf", []byte("[session]\nenabled = false\nidle_timeout = \"2m\"\n"))
	if err != nil || c.Session.Enabled || c.Session.SessionIdle() != 2*time.Minute {
		t.Errorf("parsed %+v, %v", c.Session, err)
	}
	if c.Session.FUSEServer != "hpcctl" {
		t.Errorf("fuse_server %q without the directive, want hpcctl", c.Session.FUSEServer)
	}
	if c, err := Parse("f.conf", []byte("[session]\nfuse_server = \"squashfuse_ll\"\n")); err != nil || c.Session.FUSEServer != "squashfuse_ll" {
		t.Errorf("fuse_server = squashfuse_ll: %+v, %v", c.Session, err)
	}
	if d := Defaults(); !d.Session.Enabled || d.Session.SessionIdle() != DefaultSessionIdle {
		t.Errorf("defaults %+v", d.Session)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"syntax", "mount_home = true\nmount_tmp = \n", "f.conf:2:"},
		{"type", "\nmount_home = \"yes\"\n", "f.conf:2:"},
		{"unknown key", "mount_home = true\n\nmount_hmoe = false\n", `f.conf:3: unknown directive "mount_hmoe"`},
		{"unknown key in a table", "[signature]\nrequire_signed = false\nkeys = 1\n", `f.conf:3: unknown directive "signature.keys"`},
		{"unknown profile key", "[profile.x]\nbase = \"contain\"\npidd = true\n", `f.conf:3: unknown directive "profile.x.pidd"`},
		{"bad namespace", "allowed_namespaces = [\"pid\", \"user\"]\n", `f.conf:1: allowed_namespaces: unknown namespace "user"`},
		{"bad bind", "\nbind_paths = [\"/a\", \"rel\"]\n", `f.conf:2: bind_paths: entry 2 "rel"`},
		{"unknown default profile", "default_profile = \"strict\"\n", `f.conf:1: default_profile: unknown profile "strict"`},
		{"default not allowed", "allowed_profiles = [\"isolate\"]\n", `default_profile: profile "default" is not in allowed_profiles`},
		{"unknown allowed profile", "allowed_profiles = [\"default\", \"x\"]\n", `f.conf:1: allowed_profiles: unknown profile "x"`},
		{"profile without base", "\n[profile.x]\nnet = true\n", `f.conf:2: profile.x: profile "x" needs base`},
		{"bad base", "[profile.x]\nbase = \"strict\"\n", `f.conf:2: profile.x.base: unknown base profile "strict"`},
		{"bad cwd", "[profile.isolate]\ncwd = \"tmp\"\n", `f.conf:2: profile.isolate.cwd: "tmp"`},
		{"bad env", "[profile.isolate]\nenv = \"none\"\n", `f.conf:2: profile.isolate.env: "none"`},
		{"bad umask", "[profile.isolate]\n\numask = \"999\"\n", `f.conf:3: profile.isolate.umask: umask "999"`},
		{"relative squashfuse", "squashfuse = \"squashfuse_ll\"\n", `f.conf:1: squashfuse: "squashfuse_ll" is not an absolute path`},
		{"require_signed without keys", "[signature]\nrequire_signed = true\n", `f.conf:2: signature.require_signed: require_signed needs trusted_keys_dir`},
		{"bad owner", "limit_container_owners = [\"a b\"]\n", `f.conf:1: limit_container_owners`},
		{"bad idle timeout", "[session]\nidle_timeout = \"30\"\n", `f.conf:2: session.idle_timeout: "30" is not a positive duration`},
		{"negative idle timeout", "[session]\nidle_timeout = \"-1s\"\n", `f.conf:2: session.idle_timeout: "-1s"`},
		{"unknown fuse server", "[session]\nfuse_server = \"squashfuse\"\n", `f.conf:2: session.fuse_server: unknown server "squashfuse"; want one of hpcctl, squashfuse_ll`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.conf", []byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(filepath.Join(dir, "none.conf"), true)
	if err != nil || !reflect.DeepEqual(c, Defaults()) {
		t.Errorf("missing default file: %+v, %v", c, err)
	}
	if _, err := Load(filepath.Join(dir, "none.conf"), false); err == nil {
		t.Error("missing explicit file: no error")
	}
	p := filepath.Join(dir, "h.conf")
	if err := os.WriteFile(p, []byte("user_binds = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(p, false); err != nil || c.UserBinds || c.Path != p {
		t.Errorf("%+v, %v", c, err)
	}
}
