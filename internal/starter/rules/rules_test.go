package rules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"
	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestInstallPaths(t *testing.T) {
	for _, c := range []struct {
		exe, prefix string
		conf, comp  []string
	}{
		{"/opt/h/libexec/hpcctl/hpcctl-starter", "/opt/h", []string{"/opt/h/etc/hpcctl/hpcctl.conf", config.DefaultPath},
			[]string{"/opt/h/libexec/hpcctl/hpcctl-image", "/opt/h/bin/hpcctl-image"}},
		{"/opt/h/bin/hpcctl-starter", "/opt/h", []string{"/opt/h/etc/hpcctl/hpcctl.conf", config.DefaultPath},
			[]string{"/opt/h/bin/hpcctl-image", "/opt/h/bin/hpcctl-image"}},
		{"/usr/libexec/hpcctl/hpcctl-starter", "/usr", []string{config.DefaultPath},
			[]string{"/usr/libexec/hpcctl/hpcctl-image", "/usr/bin/hpcctl-image"}},
		{"/bin/hpcctl-starter", "/", []string{config.DefaultPath}, []string{"/bin/hpcctl-image", "/bin/hpcctl-image"}},
		{"/somewhere/hpcctl-starter", "", []string{config.DefaultPath}, []string{"/somewhere/hpcctl-image"}},
	} {
		if got := Prefix(c.exe); got != c.prefix {
			t.Errorf("Prefix(%s) = %q, want %q", c.exe, got, c.prefix)
		}
		if got := ConfigPaths(c.exe); !slices.Equal(got, c.conf) {
			t.Errorf("ConfigPaths(%s) = %q, want %q", c.exe, got, c.conf)
		}
		if got := CompanionPaths(c.exe); !slices.Equal(got, c.comp) {
			t.Errorf("CompanionPaths(%s) = %q, want %q", c.exe, got, c.comp)
		}
	}
}

func TestEnvironmentClean(t *testing.T) {
	for _, c := range []struct {
		env   []string
		clean bool
	}{
		{nil, true}, {[]string{"GOTRACEBACK=none"}, true}, {[]string{"GOTRACEBACK=all"}, false},
		{[]string{"GOTRACEBACK=none", "GODEBUG=x=1"}, false}, {[]string{"LD_PRELOAD=x"}, false},
	} {
		if got := EnvironmentClean(c.env); got != c.clean {
			t.Errorf("EnvironmentClean(%q) = %v", c.env, got)
		}
	}
}

func TestCheckSpec(t *testing.T) {
	conf := config.Defaults()
	conf.AllowedNamespaces = []string{"pid", "net"}
	good := func() *spec.Spec {
		return &spec.Spec{Namespaces: spec.Namespaces{Mount: true, PID: true, Net: true}, RootFS: spec.RootFS{Backend: spec.BackendLoop}}
	}
	for _, c := range []struct {
		name   string
		change func(*spec.Spec)
		pid1   bool
		want   string // "" accepts
	}{
		{"good", func(*spec.Spec) {}, true, ""},
		{"no PID namespace outside one", func(s *spec.Spec) { s.Namespaces.PID = false }, false, ""},
		{"user namespace", func(s *spec.Spec) { s.Namespaces.User = true }, true, "user namespace"},
		{"UID map", func(s *spec.Spec) { s.UIDMap = []spec.IDMap{{ContainerID: 0, HostID: 0, Size: 1}} }, true, "user namespace"},
		{"GID map", func(s *spec.Spec) { s.GIDMap = []spec.IDMap{{ContainerID: 0, HostID: 0, Size: 1}} }, true, "user namespace"},
		{"no mount namespace", func(s *spec.Spec) { s.Namespaces.Mount = false }, true, "no mount namespace"},
		{"PID namespace asked, starter not PID 1", func(*spec.Spec) {}, false, "PID namespace"},
		{"starter PID 1, none asked", func(s *spec.Spec) { s.Namespaces.PID = false }, true, "PID namespace"},
		{"IPC not allowed", func(s *spec.Spec) { s.Namespaces.IPC = true }, true, "namespace ipc"},
		{"UTS not allowed", func(s *spec.Spec) { s.Namespaces.UTS = true }, true, "namespace uts"},
		{"squashfuse", func(s *spec.Spec) { s.RootFS.Backend = spec.BackendSquashfuse }, true, "squashfuse backend"},
		{"directory", func(s *spec.Spec) { s.RootFS.Backend = spec.BackendDir }, true, "dir backend"},
	} {
		s := good()
		c.change(s)
		err := CheckSpec(conf, s, c.pid1)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: CheckSpec = %v, want %q", c.name, err, c.want)
		}
	}
	conf.AllowedNamespaces = nil
	if err := CheckSpec(conf, good(), true); err == nil || !strings.Contains(err.Error(), "namespace pid") {
		t.Errorf("PID namespace with none allowed: %v", err)
	}
}

func TestUnshareFlags(t *testing.T) {
	if got := UnshareFlags(spec.Namespaces{Mount: true, PID: true, User: true}); got != unix.CLONE_NEWNS {
		t.Errorf("mount only (PID made by the relay, user refused): %#x", got)
	}
	all := UnshareFlags(spec.Namespaces{IPC: true, Net: true, UTS: true})
	if all != unix.CLONE_NEWNS|unix.CLONE_NEWIPC|unix.CLONE_NEWNET|unix.CLONE_NEWUTS {
		t.Errorf("all: %#x", all)
	}
}

const passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\nbroken\nbad:x:notanumber:1::/:/bin/sh\n"

func TestOwnersOf(t *testing.T) {
	o := OwnersOf([]string{"4321", "alice", "no-such-user", "bad"}, []byte(passwd))
	if !o[0] || !o[1234] || !o[4321] || len(o) != 3 {
		t.Errorf("OwnersOf = %v", o)
	}
	if o := OwnersOf(nil, nil); len(o) != 1 || !o[0] {
		t.Errorf("OwnersOf(nil) = %v, want root only", o)
	}
}

func TestSafeFileDir(t *testing.T) {
	o := Owners{0: true, 1234: true}
	const user = 1000
	st := func(uid uint32, mode uint32) *unix.Stat_t { return &unix.Stat_t{Uid: uid, Mode: mode} }
	for _, c := range []struct {
		name     string
		st       *unix.Stat_t
		file, dr bool // safe as a file, as a directory
	}{
		{"root 0644 file", st(0, unix.S_IFREG|0o644), true, false},
		{"owner 0644 file", st(1234, unix.S_IFREG|0o644), true, false},
		{"the user's own file", st(user, unix.S_IFREG|0o644), false, false},
		{"untrusted owner", st(77, unix.S_IFREG|0o644), false, false},
		{"group-writable file", st(0, unix.S_IFREG|0o664), false, false},
		{"world-writable file", st(0, unix.S_IFREG|0o646), false, false},
		{"symbolic link", st(0, unix.S_IFLNK|0o777), false, false},
		{"root 0755 directory", st(0, unix.S_IFDIR|0o755), true, true},
		{"world-writable directory", st(0, unix.S_IFDIR|0o777), false, false},
		{"sticky world-writable directory", st(0, unix.S_IFDIR|0o1777), false, true},
		{"the user's sticky directory", st(user, unix.S_IFDIR|0o1777), false, false},
		{"untrusted sticky directory", st(77, unix.S_IFDIR|0o1777), false, false},
	} {
		if err := o.SafeFile("f", c.st, user); (err == nil) != c.file {
			t.Errorf("%s: SafeFile = %v", c.name, err)
		}
		if err := o.SafeDir("d", c.st, user); (err == nil) != c.dr {
			t.Errorf("%s: SafeDir = %v", c.name, err)
		}
	}
	// Root's files are not safe for root (user -1 is nobody's: the configuration's check).
	if err := o.SafeFile("f", st(0, unix.S_IFREG|0o644), 0); err == nil {
		t.Errorf("root's file passed for root")
	}
}

func TestRootFile(t *testing.T) {
	for _, c := range []struct {
		st *unix.Stat_t
		ok bool
	}{
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFREG | 0o644}, true},
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFREG | 0o600}, true},
		{&unix.Stat_t{Uid: 1000, Mode: unix.S_IFREG | 0o644}, false},
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFREG | 0o664}, false},
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFREG | 0o666}, false},
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFIFO | 0o644}, false},
	} {
		if err := RootFile("/etc/x.conf", c.st); (err == nil) != c.ok {
			t.Errorf("RootFile(%#o uid %d) = %v", c.st.Mode, c.st.Uid, err)
		}
	}
}

func TestCheckLimits(t *testing.T) {
	conf := config.Defaults()
	if err := CheckLimits(conf, "/anywhere/x.sif", 1000, nil); err != nil {
		t.Errorf("no limits: %v", err)
	}
	conf.LimitContainerPaths = []string{"/shared/images/", "/opt/img"}
	for p, ok := range map[string]bool{
		"/shared/images/a.sif": true, "/shared/images/sub/a.sif": true, "/opt/img": true, "/opt/img/a.sif": true,
		"/shared/imagesX/a.sif": false, "/opt/imgs/a.sif": false, "/tmp/a.sif": false, "/": false,
	} {
		if err := CheckLimits(conf, p, 0, nil); (err == nil) != ok {
			t.Errorf("limit_container_paths, %s: %v", p, err)
		}
	}
	conf.LimitContainerPaths = nil
	conf.LimitContainerOwners = []string{"alice", "4321"}
	for uid, ok := range map[uint32]bool{1234: true, 4321: true, 0: false, 1000: false} {
		if err := CheckLimits(conf, "/x.sif", uid, []byte(passwd)); (err == nil) != ok {
			t.Errorf("limit_container_owners, UID %d: %v", uid, err)
		}
	}
	conf.LimitContainerOwners = []string{"root"}
	if err := CheckLimits(conf, "/x.sif", 0, []byte(passwd)); err != nil {
		t.Errorf("limit_container_owners = root, a root-owned image: %v", err)
	}
}

func TestMountedByRoot(t *testing.T) {
	info := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"40 22 0:40 / /cvmfs rw - fuse cvmfs2 rw,user_id=0,group_id=0,allow_other\n" +
		"41 22 0:41 / /home/u/fs rw - fuse.sshfs u@h: rw,user_id=1000,group_id=1000\n" +
		"42 22 0:42 / /x rw shared:3 - fuse x rw,user_id=10,group_id=0\n" +
		"4 22 0:43 / /y rw - fuse y rw,user_id=0\n"
	for id, want := range map[uint64]bool{40: true, 41: false, 42: false, 4: true, 22: false, 99: false} {
		if got := MountedByRoot([]byte(info), id); got != want {
			t.Errorf("MountedByRoot(%d) = %v", id, got)
		}
	}
}

func TestHostDevice(t *testing.T) {
	for p, want := range map[string]bool{
		"/dev": true, "/dev/null": true, "/dev/dri/card0": true, "/dev/shm": false, "/dev/shm/x": false,
		"/dev/mqueue": false, "/dev/shmx": true, "/devices": false, "/home/u/dev": false, "/": false,
	} {
		if got := HostDevice(p); got != want {
			t.Errorf("HostDevice(%s) = %v", p, got)
		}
	}
}

func TestPolicyError(t *testing.T) {
	err := errors.New("exit status 1")
	if got := PolicyError("/i.sif", "warning\nhpcctl: image /i.sif: not signed by a trusted key\n", err).Error(); got != "image /i.sif: not signed by a trusted key" {
		t.Errorf("last line: %q", got)
	}
	if got := PolicyError("/i.sif", " \n", err).Error(); !strings.Contains(got, "/i.sif: refused by the signature policy (exit status 1)") {
		t.Errorf("no message: %q", got)
	}
}

func TestLastCap(t *testing.T) {
	for in, want := range map[string]int{"40\n": 40, "41": 41, "": 63, "x": 63, "-1": 63} {
		if got := LastCap([]byte(in)); got != want {
			t.Errorf("LastCap(%q) = %d", in, got)
		}
	}
}

func TestPartition(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, data []byte) *os.File {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	mk := func(name string, fs sif.FSType, part sif.PartType) *os.File {
		payload := append([]byte("hsqs"), bytes.Repeat([]byte{7}, 4092)...)
		di, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(payload), sif.OptPartitionMetadata(fs, part, "amd64"))
		if err != nil {
			t.Fatal(err)
		}
		var buf sif.Buffer
		if _, err := sif.CreateContainer(&buf, sif.OptCreateWithDescriptors(di), sif.OptCreateDeterministic()); err != nil {
			t.Fatal(err)
		}
		return open(name, buf.Bytes())
	}
	if off, size, err := Partition(open("bare.sqfs", []byte("hsqs and the rest"))); off != 0 || size != 0 || err != nil {
		t.Errorf("bare squashfs: %d %d %v", off, size, err)
	}
	off, size, err := Partition(mk("good.sif", sif.FsSquash, sif.PartPrimSys))
	if err != nil || off <= 0 || size != 4096 {
		t.Errorf("SIF: offset %d size %d: %v", off, size, err)
	}
	for name, f := range map[string]*os.File{
		"ext3.sif":   mk("ext3.sif", sif.FsExt3, sif.PartPrimSys),
		"data.sif":   mk("data.sif", sif.FsSquash, sif.PartData),
		"random.img": open("random.img", bytes.Repeat([]byte("not an image"), 100)),
		"empty.img":  open("empty.img", nil),
	} {
		if _, _, err := Partition(f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
