package isolation

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
)

func TestProfileFor(t *testing.T) {
	c, err := config.Parse("site.conf", []byte(`
[profile.gpu]
base = "containall"
net = true
hostname = "gpu"
umask = "077"
env = "allowlist"
cwd = "image"

[profile.isolate]
no_new_privs = false
umask = ""
`))
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := ProfileFor(c, "gpu")
	if err != nil {
		t.Fatal(err)
	}
	want := Profiles()[ProfileContainAll]
	want.Name, want.Net, want.Hostname, want.Umask, want.Env, want.Cwd = "gpu", true, "gpu", 0o077, EnvAllowList, CwdImage
	if !reflect.DeepEqual(gpu, want) {
		t.Errorf("gpu:\n got %+v\nwant %+v", gpu, want)
	}
	iso, err := ProfileFor(c, ProfileIsolate)
	if err != nil {
		t.Fatal(err)
	}
	want = Profiles()[ProfileIsolate]
	want.NoNewPrivs, want.Umask = false, -1
	if !reflect.DeepEqual(iso, want) {
		t.Errorf("changed isolate:\n got %+v\nwant %+v", iso, want)
	}
	if p, err := ProfileFor(c, ProfileContain); err != nil || !reflect.DeepEqual(p, Profiles()[ProfileContain]) {
		t.Errorf("untouched contain: %+v, %v", p, err)
	}
	if _, err := ProfileFor(c, "strict"); err == nil || !strings.Contains(err.Error(), "gpu") {
		t.Errorf("unknown profile: %v (want the known ones listed)", err)
	}
}

func TestPolicyFor(t *testing.T) {
	c, err := config.Parse("/etc/hpcctl/hpcctl.conf", []byte(`
mount_home = false
mount_hostfiles = false
bind_paths = ["/opt/site:/site:ro"]
user_binds = false
allowed_namespaces = ["pid"]
allowed_profiles = ["default", "contain"]
[environment]
job_variables = ["SLURM_*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := PolicyFor(c)
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Source: "/etc/hpcctl/hpcctl.conf", NoMount: NoMount{MountHome: true, MountHostFiles: true},
		BindPaths:       []Bind{{"/opt/site", "/site", true, nil}},
		AllowedProfiles: []string{"default", "contain"}, AllowedNamespaces: []string{"pid"}, NoUserBinds: true,
		JobVariables: JobVariables{"SLURM_*"},
	}
	if !reflect.DeepEqual(pol, want) {
		t.Errorf("got  %+v\nwant %+v", pol, want)
	}
	def, _ := PolicyFor(config.Defaults())
	if _, err := Build(Profiles()[ProfileIsolate], def, plainUser(), Options{}, img, []string{"true"}); err != nil {
		t.Errorf("the default configuration refuses --isolate: %v", err)
	}
}
