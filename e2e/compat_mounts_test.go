package e2e

// Apptainer's mounts in hpcctl: nested bind destinations, image binds and image overlays, and
// squashfuse_ll found without PATH (issue 15).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestCompatNoPathFindsSquashfuse: a caller without any environment (env -i: cron, some
// schedulers' prologs) still mounts the image with squashfuse_ll, found in the standard
// directories, or at the path the configuration gives (a wrapper that leaves a mark shows that
// one ran), as root (--backend squashfuse) and as a plain user.
func TestCompatNoPathFindsSquashfuse(t *testing.T) {
	e := ltSetup(t)
	testutil.NeedCommands(t, "squashfuse_ll")
	real, err := exec.LookPath("squashfuse_ll")
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			mark := filepath.Join(dir, "mark")
			wrapper := filepath.Join(dir, "sqfs-wrapper")
			script := "#!/bin/sh\necho ran >" + mark + "\nexec " + real + " \"$@\"\n"
			conf := filepath.Join(dir, "hpcctl.conf")
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte("squashfuse = \""+wrapper+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name string
				args []string
			}{
				{"standard directories", []string{"exec", "--backend", "squashfuse", "--no-session", e.bb, "echo", "ok"}},
				{"configured path", []string{"exec", "--config", conf, "--backend", "squashfuse", "--no-session", e.bb, "echo", "ok"}},
			} {
				cmd := e.cmd(t, as, dir, nil, c.args...)
				// env -i: nothing but the harness's token, which finds leftover processes.
				cmd.Env = []string{"HPCCTL_E2E_TOKEN=" + e.token}
				out, err := cmd.CombinedOutput()
				if err != nil || string(out) != "ok\n" {
					t.Fatalf("%s: %v, output %q", c.name, err, out)
				}
				if _, err := os.Stat(mark); (err == nil) != (c.name == "configured path") {
					t.Errorf("%s: the configured squashfuse_ll ran: %v", c.name, err == nil)
				}
			}
			if b, err := os.ReadFile(mark); err != nil || string(b) != "ran\n" {
				t.Errorf("the configured squashfuse_ll did not run: %v %q", err, b)
			}
		})
	}
}

// TestCompatNestedBinds: a bind whose mount point lies inside another bind's host directory,
// which lacks it (-B a:/x -B b:/x/y, and a bind under a custom --home), gets it in a private
// layer: the host directory is left as it was, its entries stay readable and writable, a new
// name beside them fails loudly (read-only), as root and as a plain user.
func TestCompatNestedBinds(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			mk := func(name, content string) string {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
					t.Fatal(err)
				}
				for d := filepath.Dir(p); d != dir; d = filepath.Dir(d) {
					os.Chmod(d, 0o777) //nolint:errcheck // umask; the plain user writes here
				}
				os.Chmod(p, 0o666) //nolint:errcheck // umask
				return filepath.Dir(p)
			}
			a, b := mk("a/fa", "A\n"), mk("b/fb", "B\n")
			mk("a/p/fp", "P\n")
			home := mk("h/fh", "H\n")
			if err := os.Symlink("fa", filepath.Join(a, "link")); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name   string
				args   []string
				script string
				stdout string
			}{
				{"nested", []string{"-B", a + ":/x", "-B", b + ":/x/y"},
					`cat /x/fa /x/y/fb /x/link /x/p/fp; echo a2 >> /x/fa; echo new > /x/y/new; touch /x/other 2>/dev/null || echo refused`, "A\nB\nA\nP\nrefused\n"},
				{"two inside one", []string{"-B", a + ":/x", "-B", b + ":/x/y", "-B", b + ":/x/z/deeper"},
					`cat /x/y/fb /x/z/deeper/fb; ls /x`, "B\nB\nfa\nlink\np\ny\nz\n"},
				{"deeper, inside an entry", []string{"-B", a + ":/x", "-B", b + ":/x/p/q"}, `cat /x/p/fp /x/p/q/fb`, "P\nB\n"},
				{"read-only outer", []string{"-B", a + ":/x:ro", "-B", b + ":/x/y"},
					`cat /x/fa; echo w >> /x/fa 2>/dev/null || echo ro; echo w > /x/y/w && echo rw`, "A\na2\nro\nrw\n"},
				{"under a custom home", []string{"--home", home + ":/home/me", "-B", b + ":/home/me/data/in"},
					`cd; cat fh data/in/fb; echo h2 >> fh`, "H\nB\n"},
			} {
				r := e.run(t, as, dir, nil, "", append(append([]string{"exec"}, c.args...), e.bb, "sh", "-c", c.script)...)
				if r.code != 0 || r.stdout != c.stdout {
					t.Errorf("%s: exit %d, stdout %q (want %q), stderr %q", c.name, r.code, r.stdout, c.stdout, r.stderr)
				}
			}
			for _, c := range []struct{ dir, want string }{{a, "fa link p"}, {filepath.Join(a, "p"), "fp"}, {home, "fh"}} {
				entries, err := os.ReadDir(c.dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, en := range entries {
					names = append(names, en.Name())
				}
				if got := strings.Join(names, " "); got != c.want {
					t.Errorf("%s on the host holds %q, want %q: hpcctl created mount points there", c.dir, got, c.want)
				}
			}
			for file, want := range map[string]string{filepath.Join(a, "fa"): "A\na2\n", filepath.Join(b, "new"): "new\n", filepath.Join(home, "fh"): "H\nh2\n"} {
				if got, err := os.ReadFile(file); err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want %q (writes through the layer reach the host)", file, got, err, want)
				}
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// TestCompatImageBindsAndOverlays: bind options image-src= and id= bind a directory of a squashfs
// image or of a SIF partition, read-only; a squashfs image or a SIF's squashfs overlay
// partition is a read-only --overlay layer (beside a writable directory); ext3 images and other
// misuse are refused with one line; as root (the kernel) and as a plain user (squashfuse_ll).
func TestCompatImageBindsAndOverlays(t *testing.T) {
	e := ltSetup(t)
	testutil.NeedCommands(t, "mkfs.ext3")
	before := ltTake(t)
	dir := e.workdir(t)
	tree := filepath.Join(dir, "tree")
	for name, content := range map[string]string{"t": "top\n", "sub/s": "inner\n"} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sqfs := filepath.Join(dir, "d.sqfs")
	if b, err := exec.Command("mksquashfs", tree, sqfs, "-noappend", "-quiet", "-no-progress", "-all-root").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, b)
	}
	ext3 := filepath.Join(dir, "e.img")
	if b, err := exec.Command("dd", "if=/dev/zero", "of="+ext3, "bs=1M", "count=2").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, b)
	}
	if b, err := exec.Command("mkfs.ext3", "-q", "-F", ext3).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext3: %v: %s", err, b)
	}
	// A SIF (the busybox image) with the squashfs as a data partition, one with it as an
	// overlay partition, and one with an ext3 overlay partition (Apptainer's writable kind).
	withPart := func(name, file string, isExt3, overlay bool) (string, uint32) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(e.bb)
		if err != nil {
			t.Fatal(err)
		}
		if err = os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		id, err := siftest.AddPartition(p, file, isExt3, overlay)
		if err != nil {
			t.Fatal(err)
		}
		return p, id
	}
	data, dataID := withPart("data.sif", sqfs, false, false)
	ovSIF, _ := withPart("ov.sif", sqfs, false, true)
	extSIF, _ := withPart("ext.sif", ext3, true, true)
	for _, f := range []string{sqfs, ext3} {
		os.Chmod(f, 0o644) //nolint:errcheck // umask; the plain user reads them
	}
	id := fmt.Sprint(dataID)
	readData := func(flags ...string) func(string) []string {
		return func(string) []string {
			return append(append([]string{"exec"}, flags...), e.bb, "sh", "-c", "cat /data/t /data/sub/s 2>&1; touch /data/new 2>/dev/null || echo ro")
		}
	}
	sh := func(script string, flags ...string) func(string) []string {
		return func(string) []string { return append(append([]string{"exec"}, flags...), e.bb, "sh", "-c", script) }
	}
	cpRun(t, e, []cpCase{
		{name: "image-src=/ of a squashfs", args: readData("-B", sqfs+":/data:image-src=/"), stdout: "top\ninner\nro\n"},
		{name: "image-src= a subdirectory", args: sh("cat /d/s", "-B", sqfs+":/d:image-src=/sub"), stdout: "inner\n"},
		{name: "id= a SIF partition", args: readData("-B", data+":/data:id="+id), stdout: "top\ninner\nro\n"},
		{name: "--mount with image-src", args: sh("cat /d/s", "--mount", "type=bind,src="+sqfs+",dst=/d,image-src=/sub"), stdout: "inner\n"},
		{name: "a SIF's root partition", args: sh("test -x /r/bin/busybox && echo root", "-B", data+":/r:image-src=/"), stdout: "root\n"},
		{name: "squashfs overlay", args: sh("cat /t /sub/s; touch /t2 2>/dev/null || echo ro", "--overlay", sqfs), stdout: "top\ninner\nro\n"},
		{name: "squashfs overlay under a writable directory", args: func(d string) []string {
			// The working directory d is bound: the write shows in d/ov/upper.
			return []string{"exec", "--overlay", sqfs + ":ro", "--overlay", d + "/ov", e.bb, "sh", "-c", "cat /t; echo w > /w; cat " + d + "/ov/upper/w /w"}
		}, stdout: "top\nw\nw\n"},
		{name: "SIF overlay partition", args: sh("cat /sub/s", "--overlay", ovSIF), stdout: "inner\n"},
		{name: "ext3 image bind", args: sh("true", "-B", ext3+":/e:image-src=/"), code: 255, stderr: "ext3"},
		{name: "ext3 overlay partition", args: sh("true", "--overlay", extSIF), code: 255, stderr: "ext3"},
		{name: "id= of a squashfs file", args: sh("true", "-B", sqfs+":/d:id=2"), code: 255, stderr: "leave out id="},
		{name: "no such object", args: sh("true", "-B", data+":/d:id=99"), code: 255, stderr: "object 99"},
		{name: "no such image-src", args: sh("true", "-B", sqfs+":/d:image-src=/nope"), code: 255, stderr: "image-src=/nope"},
		{name: "not an image", args: sh("true", "-B", "/etc/hostname:/d:image-src=/"), code: 255, stderr: "neither a squashfs image nor a SIF"},
		{name: "rw image", args: sh("true", "-B", sqfs+":/d:image-src=/,rw"), code: 255, stderr: "read-only"},
		{name: "writable image overlay", args: sh("true", "--overlay", sqfs+":rw"), code: 255, stderr: "read-only layer"},
		{name: "two writable directories", args: func(d string) []string {
			return []string{"exec", "--overlay", sqfs, "--overlay", d + "/a", "--overlay", d + "/b", e.bb, "true"}
		}, code: 255, stderr: "only one may be writable"},
	})
	e.nothingLeft(t, before, e.bb)
}
