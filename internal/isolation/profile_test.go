package isolation

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// mountAt returns the last mount at dst, nil when there is none.
func mountAt(s *spec.Spec, dst string) *spec.Mount {
	var found *spec.Mount
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			found = &s.Mounts[i]
		}
	}
	return found
}

func kindAt(s *spec.Spec, dst string) spec.MountKind {
	if m := mountAt(s, dst); m != nil {
		return m.Kind
	}
	return ""
}

func TestProfiles(t *testing.T) {
	image := img
	image.WorkingDir = "/work"
	image.Env = []string{"PATH=/opt/bin", "LANG=C.UTF-8"}
	tests := []struct {
		profile             string
		ns                  spec.Namespaces
		hostname            string
		proc, sys, dev, tmp spec.MountKind
		home                spec.MountKind
		cwdBound            bool
		cwd                 string
		hostFiles           bool
		envHas, envLacks    []string
		nnp                 bool
		umask               *uint32
	}{
		{profile: ProfileDefault, ns: spec.Namespaces{User: true, Mount: true},
			proc: spec.KindBind, sys: spec.KindBind, dev: spec.KindBind, tmp: spec.KindBind, home: spec.KindBind,
			cwdBound: true, cwd: "/scratch/job", hostFiles: true,
			envHas: []string{"FOO=host", "TERM=xterm", "BAR=prefixed", "LANG=C.UTF-8"}},
		{profile: ProfileContain, ns: spec.Namespaces{User: true, Mount: true},
			proc: spec.KindBind, sys: spec.KindBind, dev: spec.KindTmpfs, tmp: spec.KindTmpfs, home: spec.KindTmpfs,
			cwd: "/home/alice", hostFiles: true,
			envHas: []string{"FOO=host", "BAR=prefixed"}},
		{profile: ProfileContainAll, ns: spec.Namespaces{User: true, Mount: true, PID: true, IPC: true},
			proc: spec.KindProc, sys: spec.KindBind, dev: spec.KindTmpfs, tmp: spec.KindTmpfs, home: spec.KindTmpfs,
			cwd: "/home/alice", hostFiles: true,
			envHas: []string{"TERM=xterm", "BAR=prefixed", "LANG=C.UTF-8"}, envLacks: []string{"FOO="}},
		{profile: ProfileIsolate, ns: spec.Namespaces{User: true, Mount: true, PID: true, IPC: true, Net: true, UTS: true},
			hostname: DefaultHostname,
			proc:     spec.KindProc, sys: spec.KindSysfs, dev: spec.KindTmpfs, tmp: spec.KindTmpfs, home: spec.KindTmpfs,
			cwd:    "/work",
			envHas: []string{"TERM=xterm", "PATH=/opt/bin", "LANG=C.UTF-8", "HOME=/home/alice"}, envLacks: []string{"FOO=", "BAR=", "LANG=host"},
			nnp: true, umask: ptr(uint32(0o022))},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			h := plainUser()
			h.Cwd = "/scratch/job"
			h.Env = []string{"FOO=host", "TERM=xterm", "HPCCTLENV_BAR=prefixed", "LANG=host", "PATH=/host/bin"}
			o := Options{EnvBinds: []Bind{{"/envbind", "/envbind", false, nil}}}
			pol := Policy{BindPaths: []Bind{{"/site", "/site", true, nil}}}
			s, err := Build(Profiles()[tt.profile], pol, h, o, image, []string{"true"})
			if err != nil {
				t.Fatal(err)
			}
			if s.Namespaces != tt.ns || s.Hostname != tt.hostname {
				t.Errorf("namespaces %+v hostname %q, want %+v %q", s.Namespaces, s.Hostname, tt.ns, tt.hostname)
			}
			for _, c := range []struct {
				dst  string
				want spec.MountKind
			}{{"/proc", tt.proc}, {"/sys", tt.sys}, {"/dev", tt.dev}, {"/tmp", tt.tmp}, {"/var/tmp", tt.tmp}, {"/home/alice", tt.home}} {
				if got := kindAt(s, c.dst); got != c.want {
					t.Errorf("%s: %q, want %q", c.dst, got, c.want)
				}
			}
			if got := mountAt(s, "/scratch/job") != nil; got != tt.cwdBound {
				t.Errorf("host cwd bound: %v, want %v", got, tt.cwdBound)
			}
			if s.Cwd != tt.cwd {
				t.Errorf("cwd %q, want %q", s.Cwd, tt.cwd)
			}
			if got := mountAt(s, "/etc/resolv.conf") != nil; got != tt.hostFiles {
				t.Errorf("host /etc files: %v, want %v", got, tt.hostFiles)
			}
			// Configured and $HPCCTL_BIND paths are host defaults: --isolate leaves them out.
			if got := mountAt(s, "/site") != nil && mountAt(s, "/envbind") != nil; got == (tt.profile == ProfileIsolate) {
				t.Errorf("config binds present: %v", got)
			}
			env := "\n" + strings.Join(s.Env, "\n") + "\n"
			for _, w := range tt.envHas {
				if !strings.Contains(env, "\n"+w+"\n") {
					t.Errorf("env lacks %s: %q", w, s.Env)
				}
			}
			for _, b := range tt.envLacks {
				if strings.Contains(env, "\n"+b) {
					t.Errorf("env has %s: %q", b, s.Env)
				}
			}
			if s.NoNewPrivileges != tt.nnp || !reflect.DeepEqual(s.Umask, tt.umask) {
				t.Errorf("no_new_privs %v umask %v", s.NoNewPrivileges, s.Umask)
			}
			if tt.home == spec.KindTmpfs && mountAt(s, "/home/alice").Data != "mode=0700,uid=1000,gid=100" {
				t.Errorf("home tmpfs %+v", mountAt(s, "/home/alice"))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestIsolateRootSetsNoNewPrivs(t *testing.T) {
	h := Host{UID: 0, GID: 0, User: User{Name: "root", Home: "/root"}, Cwd: "/"}
	s, err := Build(Profiles()[ProfileIsolate], Policy{}, h, Options{}, Image{Path: "/i.sif", Backend: spec.BackendLoop}, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.NoNewPrivileges || !s.KeepCapabilities || s.Namespaces.User {
		t.Errorf("root isolate: nnp %v caps %v userns %v", s.NoNewPrivileges, s.KeepCapabilities, s.Namespaces.User)
	}
	if m := mountAt(s, "/proc/sys"); m == nil || !m.ReadOnly || !m.SourceInside {
		t.Errorf("/proc/sys: %+v, want the container's own, read-only", m)
	}
}

func TestMinimalDev(t *testing.T) {
	s, err := Build(Profiles()[ProfileContain], Policy{}, plainUser(), Options{}, img, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	var dev []string
	for _, m := range s.Mounts {
		if within(m.Destination, "/dev") {
			dev = append(dev, string(m.Kind)+":"+m.Destination)
		}
	}
	want := []string{"tmpfs:/dev", "bind:/dev/null", "bind:/dev/zero", "bind:/dev/full", "bind:/dev/random", "bind:/dev/urandom", "bind:/dev/tty",
		"devpts:/dev/pts", "bind:/dev/ptmx", "tmpfs:/dev/shm", "symlink:/dev/fd", "symlink:/dev/stdin", "symlink:/dev/stdout", "symlink:/dev/stderr"}
	if !reflect.DeepEqual(dev, want) {
		t.Errorf("/dev mounts:\n got %q\nwant %q", dev, want)
	}
}

func TestSwitchesAndNoMount(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		o       Options
		check   func(t *testing.T, s *spec.Spec)
	}{
		{"pid gives a fresh /proc", ProfileDefault, Options{Switches: Switches{PID: true}}, func(t *testing.T, s *spec.Spec) {
			if !s.Namespaces.PID || kindAt(s, "/proc") != spec.KindProc {
				t.Errorf("ns %+v /proc %q", s.Namespaces, kindAt(s, "/proc"))
			}
		}},
		{"net gives a fresh read-only /sys", ProfileDefault, Options{Switches: Switches{Net: true}}, func(t *testing.T, s *spec.Spec) {
			if m := mountAt(s, "/sys"); !s.Namespaces.Net || m.Kind != spec.KindSysfs || !m.ReadOnly {
				t.Errorf("ns %+v /sys %+v", s.Namespaces, m)
			}
		}},
		{"hostname implies uts", ProfileDefault, Options{Switches: Switches{Hostname: "node"}}, func(t *testing.T, s *spec.Spec) {
			if !s.Namespaces.UTS || s.Hostname != "node" {
				t.Errorf("ns %+v hostname %q", s.Namespaces, s.Hostname)
			}
		}},
		{"uts alone keeps the name", ProfileDefault, Options{Switches: Switches{UTS: true}}, func(t *testing.T, s *spec.Spec) {
			if !s.Namespaces.UTS || s.Hostname != "" {
				t.Errorf("ns %+v hostname %q", s.Namespaces, s.Hostname)
			}
		}},
		{"hostname overrides isolate's", ProfileIsolate, Options{Switches: Switches{Hostname: "x"}}, func(t *testing.T, s *spec.Spec) {
			if s.Hostname != "x" {
				t.Errorf("hostname %q", s.Hostname)
			}
		}},
		{"ipc", ProfileContain, Options{Switches: Switches{IPC: true}}, func(t *testing.T, s *spec.Spec) {
			if !s.Namespaces.IPC || s.Namespaces.PID {
				t.Errorf("ns %+v", s.Namespaces)
			}
		}},
		{"no-mount home,tmp,cwd", ProfileDefault, Options{NoMount: NoMount{MountHome: true, MountTmp: true, MountCwd: true}}, func(t *testing.T, s *spec.Spec) {
			for _, d := range []string{"/home/alice", "/tmp", "/var/tmp", "/scratch/job"} {
				if mountAt(s, d) != nil {
					t.Errorf("%s mounted", d)
				}
			}
			if s.Cwd != "/scratch/job" || s.CwdFallback != "/home/alice" {
				t.Errorf("cwd %q fallback %q", s.Cwd, s.CwdFallback)
			}
		}},
		{"no-mount proc,sys,dev,hostfiles", ProfileContain, Options{NoMount: NoMount{MountProc: true, MountSys: true, MountDev: true, MountHostFiles: true}}, func(t *testing.T, s *spec.Spec) {
			for _, d := range []string{"/proc", "/sys", "/dev", "/dev/null", "/etc/hosts"} {
				if mountAt(s, d) != nil {
					t.Errorf("%s mounted", d)
				}
			}
		}},
		{"no-mount devpts", ProfileContain, Options{NoMount: NoMount{MountDevpts: true}}, func(t *testing.T, s *spec.Spec) {
			if mountAt(s, "/dev/pts") != nil || mountAt(s, "/dev/ptmx") != nil || mountAt(s, "/dev/null") == nil {
				t.Errorf("mounts %q", destinations(s))
			}
		}},
		{"contain honours --home", ProfileContain, Options{Home: "/scratch/h:/home/alice"}, func(t *testing.T, s *spec.Spec) {
			if m := mountAt(s, "/home/alice"); m == nil || m.Kind != spec.KindBind || m.Source != "/scratch/h" {
				t.Errorf("home %+v", m)
			}
		}},
		{"contain --no-home mounts nothing there", ProfileContain, Options{NoHome: true}, func(t *testing.T, s *spec.Spec) {
			if mountAt(s, "/home/alice") != nil || s.CwdFallback != "/" {
				t.Errorf("home %+v fallback %q", mountAt(s, "/home/alice"), s.CwdFallback)
			}
		}},
		{"pwd wins over isolate", ProfileIsolate, Options{Pwd: "/data"}, func(t *testing.T, s *spec.Spec) {
			if s.Cwd != "/data" {
				t.Errorf("cwd %q", s.Cwd)
			}
		}},
		{"isolate without image WorkingDir starts in /", ProfileIsolate, Options{}, func(t *testing.T, s *spec.Spec) {
			if s.Cwd != "/" {
				t.Errorf("cwd %q", s.Cwd)
			}
		}},
		{"cleanenv on default", ProfileDefault, Options{CleanEnv: true}, func(t *testing.T, s *spec.Spec) {
			if strings.Contains(strings.Join(s.Env, " "), "LANG=C") {
				t.Errorf("env %q", s.Env)
			}
		}},
		{"explicit binds go last, under isolate too", ProfileIsolate, Options{Binds: []Bind{{"/data", "/data", true, nil}}}, func(t *testing.T, s *spec.Spec) {
			if m := s.Mounts[len(s.Mounts)-1]; m.Destination != "/data" || !m.ReadOnly {
				t.Errorf("last mount %+v", m)
			}
		}},
		{"overlays pass through", ProfileDefault, Options{Overlays: []spec.Overlay{{Dir: "/ov"}, {Dir: "/ro", ReadOnly: true}}}, func(t *testing.T, s *spec.Spec) {
			if len(s.Overlays) != 2 || !s.WritableRoot {
				t.Errorf("overlays %+v, writable root %v", s.Overlays, s.WritableRoot)
			}
		}},
		{"read-only overlays keep the root read-only", ProfileDefault, Options{Overlays: []spec.Overlay{{Dir: "/ro", ReadOnly: true}}}, func(t *testing.T, s *spec.Spec) {
			if s.WritableRoot {
				t.Error("writable root")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plainUser()
			h.Cwd = "/scratch/job"
			s, err := Build(Profiles()[tt.profile], Policy{}, h, tt.o, img, []string{"true"})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseNoMount(t *testing.T) {
	nm, err := ParseNoMount([]string{"home,tmp", " cwd ", ""})
	if err != nil || !reflect.DeepEqual(nm, NoMount{MountHome: true, MountTmp: true, MountCwd: true}) {
		t.Errorf("got %v, %v", nm, err)
	}
	if _, err := ParseNoMount([]string{"home,bogus"}); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("unknown name: %v", err)
	}
}

func TestParseOverlays(t *testing.T) {
	got, err := ParseOverlays([]string{"ov", "/lower:ro", "/x/../y:rw"}, "/work")
	want := []spec.Overlay{{Dir: "/work/ov"}, {Dir: "/lower", ReadOnly: true}, {Dir: "/y"}}
	if err == nil {
		t.Errorf("two writable overlays accepted: %+v", got)
	}
	got, err = ParseOverlays([]string{"ov", "/lower:ro"}, "/work")
	if err != nil || !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{":ro", "/a:rx", "/a:ro:x"} {
		if _, err := ParseOverlays([]string{bad}, "/"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		pol     Policy
		o       Options
		want    string
	}{
		{"profile not allowed", ProfileIsolate, Policy{AllowedProfiles: []string{"default", "contain"}}, Options{}, `profile "isolate" is not allowed`},
		{"namespace not allowed", ProfileContainAll, Policy{AllowedNamespaces: []string{"ipc"}}, Options{}, "the pid namespace"},
		{"switch not allowed", ProfileDefault, Policy{AllowedNamespaces: []string{}}, Options{Switches: Switches{Net: true}}, "the net namespace"},
		{"user binds off", ProfileDefault, Policy{NoUserBinds: true, Source: "/etc/x.conf"}, Options{Binds: []Bind{{"/a", "/a", false, nil}}}, "user_binds = false in /etc/x.conf"},
		{"allowed", ProfileContainAll, Policy{AllowedProfiles: []string{"containall"}, AllowedNamespaces: []string{"pid", "ipc"}}, Options{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(Profiles()[tt.profile], tt.pol, plainUser(), tt.o, img, []string{"true"})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var na NotAllowedError
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errorsAs(err, &na) {
				t.Errorf("err %v, want NotAllowedError with %q", err, tt.want)
			}
		})
	}
}

func TestPolicyMountsAndBindPaths(t *testing.T) {
	pol := Policy{NoMount: NoMount{MountHome: true, MountTmp: true}, BindPaths: []Bind{{"/site", "/opt/site", true, nil}}}
	s, err := Build(Profiles()[ProfileDefault], pol, plainUser(), Options{}, img, []string{"true"})
	if err != nil {
		t.Fatal(err)
	}
	if mountAt(s, "/home/alice") != nil || mountAt(s, "/tmp") != nil {
		t.Errorf("mounts %q", destinations(s))
	}
	if m := mountAt(s, "/opt/site"); m == nil || m.Source != "/site" || !m.ReadOnly {
		t.Errorf("bind path %+v", m)
	}
	s, _ = Build(Profiles()[ProfileDefault], pol, plainUser(), Options{NoMount: NoMount{MountBindPaths: true}}, img, []string{"true"})
	if mountAt(s, "/opt/site") != nil {
		t.Error("--no-mount bind-paths kept the bind path")
	}
}

func errorsAs(err error, target *NotAllowedError) bool { return errors.As(err, target) }

func TestWritableTmpfsAndOverlayConflict(t *testing.T) {
	_, err := Build(Profiles()[ProfileDefault], Policy{}, plainUser(), Options{Writable: true, Overlays: []spec.Overlay{{Dir: "/ov"}}}, img, []string{"true"})
	if err == nil || !strings.Contains(err.Error(), "--writable-tmpfs") {
		t.Errorf("err %v", err)
	}
}

// TestBuiltinProfilesMatchConfig fails when the profiles defined here and the names config
// accepts (config.BuiltinProfiles) drift apart.
func TestBuiltinProfilesMatchConfig(t *testing.T) {
	profiles := Profiles()
	if len(profiles) != len(config.BuiltinProfiles) {
		t.Errorf("isolation defines %d built-in profiles, config lists %d (%q)", len(profiles), len(config.BuiltinProfiles), config.BuiltinProfiles)
	}
	for _, name := range config.BuiltinProfiles {
		if p, ok := profiles[name]; !ok || p.Name != name {
			t.Errorf("config lists profile %q, which isolation does not define (under that name)", name)
		}
	}
}
