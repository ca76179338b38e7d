package isolation

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func plainUser() Host {
	return Host{
		UID: 1000, GID: 100,
		Groups: []Group{{"users", 100}, {"wheel", 10}, {"users", 100}},
		User:   User{Name: "alice", Gecos: "Alice", Home: "/home/alice", Shell: "/bin/bash"},
		Env:    []string{"PATH=/usr/bin", "LANG=C"},
		Cwd:    "/home/alice/project",
	}
}

var img = Image{Path: "/images/py.sif", Backend: spec.BackendSquashfuse, Offset: 4096, Size: 8192, Env: []string{"PATH=/opt/bin"}}

func destinations(s *spec.Spec) []string {
	var d []string
	for _, m := range s.Mounts {
		d = append(d, m.Destination)
	}
	return d
}

func TestDefaultPlainUser(t *testing.T) {
	s, err := buildDefault(plainUser(), Options{}, img, []string{"python3", "x.py"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Namespaces.User || !s.Namespaces.Mount || s.Namespaces.PID || s.Namespaces.Net {
		t.Errorf("namespaces = %+v, want user and mount only", s.Namespaces)
	}
	if want := []spec.IDMap{{ContainerID: 1000, HostID: 1000, Size: 1}}; !reflect.DeepEqual(s.UIDMap, want) {
		t.Errorf("uid map = %+v", s.UIDMap)
	}
	if want := []spec.IDMap{{ContainerID: 100, HostID: 100, Size: 1}}; !reflect.DeepEqual(s.GIDMap, want) {
		t.Errorf("gid map = %+v", s.GIDMap)
	}
	if s.KeepCapabilities {
		t.Error("a plain user keeps capabilities")
	}
	want := []string{"/proc", "/sys", "/dev", "/etc/hosts", "/etc/localtime", "/etc/resolv.conf", "/tmp", "/var/tmp", "/home/alice"}
	if got := destinations(s); !reflect.DeepEqual(got, want) {
		t.Errorf("mounts = %q, want %q (the cwd is inside home: no extra bind)", got, want)
	}
	if s.Cwd != "/home/alice/project" || s.CwdFallback != "/home/alice" {
		t.Errorf("cwd = %q fallback %q", s.Cwd, s.CwdFallback)
	}
	if s.Identity == nil || s.Identity.Passwd != "alice:x:1000:100:Alice:/home/alice:/bin/bash" {
		t.Errorf("identity = %+v", s.Identity)
	}
	if want := []string{"users:x:100:alice", "wheel:x:10:alice"}; !reflect.DeepEqual(s.Identity.Groups, want) {
		t.Errorf("groups = %q, want %q", s.Identity.Groups, want)
	}
	if s.RootFS != (spec.RootFS{Backend: spec.BackendSquashfuse, Image: "/images/py.sif", Offset: 4096, Size: 8192}) {
		t.Errorf("rootfs = %+v", s.RootFS)
	}
	env := strings.Join(s.Env, " ")
	for _, w := range []string{"PATH=/opt/bin", "HOME=/home/alice", "LANG=C", "HPCCTL_CONTAINER=/images/py.sif", "HPCCTL_NAME=py.sif"} {
		if !strings.Contains(env, w) {
			t.Errorf("env %q lacks %s", env, w)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	h := Host{UID: 0, GID: 0, User: User{Name: "root", Home: "/root"}, Cwd: "/scratch/run"}
	s, err := buildDefault(h, Options{}, Image{Path: "/i.sif", Backend: spec.BackendLoop}, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespaces.User || s.UIDMap != nil || !s.KeepCapabilities {
		t.Errorf("root: %+v", s)
	}
	// An image without a root entry gets one; an image's own stays (AddMissing).
	if id := s.Identity; id == nil || !id.AddMissing || id.Passwd != "root:x:0:0:root:/root:/bin/sh" {
		t.Errorf("root identity: %+v", id)
	}
	if got := destinations(s); got[len(got)-1] != "/scratch/run" {
		t.Errorf("cwd outside home not bound: %q", got)
	}
	s, err = buildDefault(h, Options{NoPrivs: true}, Image{Path: "/i.sif", Backend: spec.BackendLoop}, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	if s.KeepCapabilities || !s.NoNewPrivileges {
		t.Errorf("root --no-privs: caps kept %v, no_new_privs %v", s.KeepCapabilities, s.NoNewPrivileges)
	}
}

func TestDefaultOptions(t *testing.T) {
	tests := []struct {
		name    string
		host    func(*Host)
		opts    Options
		mounts  []string // destinations after the system mounts
		cwd     string
		home    string
		wantErr bool
	}{
		{name: "no home", opts: Options{NoHome: true}, mounts: nil, cwd: "/home/alice/project", home: "/home/alice"},
		{name: "home src:dst", opts: Options{Home: "/scratch/h:/home/alice"}, mounts: []string{"/home/alice"}, cwd: "/home/alice/project", home: "/home/alice"},
		{name: "home src only", opts: Options{Home: "/scratch/h"}, mounts: []string{"/scratch/h", "/home/alice/project"}, cwd: "/home/alice/project", home: "/scratch/h"},
		{name: "pwd", opts: Options{Pwd: "/opt/app"}, mounts: []string{"/home/alice"}, cwd: "/opt/app", home: "/home/alice"},
		{name: "user binds after home", opts: Options{Binds: []Bind{{"/data", "/data", true, nil}}}, mounts: []string{"/home/alice", "/data"}, cwd: "/home/alice/project", home: "/home/alice"},
		{name: "cwd outside home is bound", host: func(h *Host) { h.Cwd = "/scratch/job" }, mounts: []string{"/home/alice", "/scratch/job"}, cwd: "/scratch/job", home: "/home/alice"},
		{name: "system cwd is not bound", host: func(h *Host) { h.Cwd = "/usr/share" }, mounts: []string{"/home/alice"}, cwd: "/usr/share", home: "/home/alice"},
		{name: "cwd under /tmp is covered", host: func(h *Host) { h.Cwd = "/tmp/x" }, mounts: []string{"/home/alice"}, cwd: "/tmp/x", home: "/home/alice"},
		{name: "bad home", opts: Options{Home: "/a:rel"}, wantErr: true},
		{name: "bad env", opts: Options{Env: []string{"NOVALUE"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plainUser()
			if tt.host != nil {
				tt.host(&h)
			}
			s, err := buildDefault(h, tt.opts, img, []string{"true"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := destinations(s)[len(systemMounts(Profiles()[ProfileDefault], nil)):]; !reflect.DeepEqual(got, tt.mounts) && !(len(got) == 0 && tt.mounts == nil) {
				t.Errorf("mounts = %q, want %q", got, tt.mounts)
			}
			if s.Cwd != tt.cwd {
				t.Errorf("cwd = %q, want %q", s.Cwd, tt.cwd)
			}
			if !strings.Contains(strings.Join(s.Env, " "), "HOME="+tt.home) {
				t.Errorf("env %q lacks HOME=%s", s.Env, tt.home)
			}
		})
	}
}

func TestArgv(t *testing.T) {
	cfg := Image{OCIConfig: true, Entrypoint: []string{"/entry"}, Cmd: []string{"default"}}
	apptainer := Image{}
	tests := []struct {
		name string
		verb Verb
		cfg  Image
		args []string
		want []string
		err  bool
	}{
		{"exec", VerbExec, cfg, []string{"python3", "x.py"}, []string{"python3", "x.py"}, false},
		{"exec without command", VerbExec, cfg, nil, nil, true},
		{"run uses cmd", VerbRun, cfg, nil, []string{"/entry", "default"}, false},
		{"run args replace cmd", VerbRun, cfg, []string{"a"}, []string{"/entry", "a"}, false},
		{"run with nothing", VerbRun, Image{OCIConfig: true}, nil, nil, true},
		{"run apptainer", VerbRun, apptainer, []string{"a"}, []string{"/bin/sh", "-c", apptainerEnv, "sh", "/.singularity.d/runscript", "a"}, false},
		{"exec apptainer sources env", VerbExec, apptainer, []string{"id"}, []string{"/bin/sh", "-c", apptainerEnv, "sh", "id"}, false},
		{"shell", VerbShell, cfg, nil, []string{"/bin/sh", "-c", shellScript, "sh"}, false},
		{"test", VerbTest, cfg, nil, []string{"/bin/sh", "-c", testScript, "sh"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Argv(tt.verb, tt.cfg, tt.args)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// buildDefault builds the default profile, "a virtualenv on steroids" as Apptainer users know it:
// same UID and GID, the host's network and PID space, $HOME, /tmp, /var/tmp, the current
// directory, /proc, /sys, /dev, /etc/hosts, /etc/localtime and /etc/resolv.conf bound from the
// host, and the host environment minus the variables the image must own.
func buildDefault(h Host, o Options, img Image, argv []string) (*spec.Spec, error) {
	return Build(Profiles()[ProfileDefault], Policy{}, h, o, img, argv)
}
