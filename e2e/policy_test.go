package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plEnv is the shared state of the policy tests: the launcher's images and users, run with the
// harness's hpcctl, which has hpcctl-image beside it.
type plEnv struct {
	*ltEnv
	root       string // root-owned, world-readable: the keys, the images, the configuration files
	keys       string // the site's trusted keys: root-owned 0755, site.pub 0644
	signed     string // bb.sif signed with the trusted key
	other      string // bb.sif signed with a key the site does not trust
	unsigned   string // bb.sif as built
	tampered   string // signed, then one byte of the partition flipped
	allowed    string // an allowed_paths directory holding a copy of signed
	outside    string // a symlink in allowed to signed, outside it
	requireCf  string // require_signed = true with keys
	pathsCf    string // allowed_paths = [allowed]
	keysOnlyCf string // trusted_keys_dir alone: no policy
}

func plSetup(t *testing.T) *plEnv {
	t.Helper()
	lt := ltSetup(t)
	e := &plEnv{ltEnv: &ltEnv{}}
	*e.ltEnv = *lt
	e.bin = bins.hpcctl
	e.root = lt.workdir(t)
	if err := os.Chmod(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	h := hpcctl{bin: bins.hpcctl, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir()}}
	for _, k := range []string{"site", "other"} {
		if code, _, errOut := h.run(t, "key", "newpair", "--no-passphrase", "--name", k); code != 0 {
			t.Fatalf("key newpair %s: %d %s", k, code, errOut)
		}
	}
	e.keys = filepath.Join(e.root, "keys")
	plMkdir(t, e.keys)
	code, pub, errOut := h.run(t, "key", "export", "site")
	if code != 0 {
		t.Fatalf("key export: %d %s", code, errOut)
	}
	plWrite(t, filepath.Join(e.keys, "site.pub"), pub)
	e.unsigned = plCopy(t, lt.bb, filepath.Join(e.root, "unsigned.sif"))
	e.signed = plCopy(t, lt.bb, filepath.Join(e.root, "signed.sif"))
	e.other = plCopy(t, lt.bb, filepath.Join(e.root, "other.sif"))
	for img, key := range map[string]string{e.signed: "site", e.other: "other"} {
		if code, _, errOut := h.run(t, "sign", "--key", key, img); code != 0 {
			t.Fatalf("sign %s: %d %s", img, code, errOut)
		}
	}
	e.tampered = plCopy(t, e.signed, filepath.Join(e.root, "tampered.sif"))
	p, err := sifPartition(e.tampered)
	if err != nil {
		t.Fatal(err)
	}
	plFlip(t, e.tampered, p.offset+p.size/2)
	e.allowed = filepath.Join(e.root, "allowed")
	plMkdir(t, e.allowed)
	plCopy(t, e.signed, filepath.Join(e.allowed, "signed.sif"))
	e.outside = filepath.Join(e.allowed, "link.sif")
	if err := os.Symlink(e.signed, e.outside); err != nil {
		t.Fatal(err)
	}
	e.requireCf = plWrite(t, filepath.Join(e.root, "require.conf"), "[signature]\nrequire_signed = true\ntrusted_keys_dir = \""+e.keys+"\"\n")
	e.pathsCf = plWrite(t, filepath.Join(e.root, "paths.conf"), "[signature]\nallowed_paths = [\""+e.allowed+"\"]\n")
	e.keysOnlyCf = plWrite(t, filepath.Join(e.root, "keysonly.conf"), "[signature]\ntrusted_keys_dir = \""+e.keys+"\"\n")
	return e
}

// TestPolicySignatures runs exec, run, shell and test under a site's signature policy, as root
// and as the plain user: an image that fails it is refused with one line naming the image and
// what failed, before anything is mounted; one that passes runs.
func TestPolicySignatures(t *testing.T) {
	e := plSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		tests := []struct {
			name   string
			conf   string
			args   []string
			stdin  string
			code   int
			stdout string
			stderr []string // all in the one line of error
		}{
			{"signed, trusted key", e.requireCf, []string{"exec", e.signed, "echo", "ok"}, "", 0, "ok\n", nil},
			{"signed, run", e.requireCf, []string{"run", e.signed, "echo", "ok"}, "", 0, "ok\n", nil},
			{"signed, unsquash", e.requireCf, []string{"exec", "--unsquash", e.signed, "echo", "ok"}, "", 0, "ok\n", nil},
			{"unsigned", e.requireCf, []string{"exec", e.unsigned, "echo", "ok"}, "", 255, "", []string{e.unsigned, "not signed"}},
			{"unsigned, run", e.requireCf, []string{"run", e.unsigned}, "", 255, "", []string{e.unsigned, "not signed"}},
			{"unsigned, shell", e.requireCf, []string{"shell", e.unsigned}, "echo ran\n", 255, "", []string{e.unsigned, "not signed"}},
			{"unsigned, test", e.requireCf, []string{"test", e.unsigned}, "", 255, "", []string{e.unsigned, "not signed"}},
			{"unsigned, unsquash", e.requireCf, []string{"exec", "--unsquash", e.unsigned, "echo", "ok"}, "", 255, "", []string{e.unsigned, "not signed"}},
			{"another key", e.requireCf, []string{"exec", e.other, "echo", "ok"}, "", 255, "", []string{e.other, "unknown key", e.keys}},
			{"tampered", e.requireCf, []string{"exec", e.tampered, "echo", "ok"}, "", 255, "", []string{e.tampered, "modified after it was signed"}},
			{"sandbox", e.requireCf, []string{"exec", e.bbTree, "echo", "ok"}, "", 255, "", []string{e.bbTree, "is not a signed SIF", "the site requires signed images"}},
			{"bare squashfs", e.requireCf, []string{"exec", e.bbSqfs, "echo", "ok"}, "", 255, "", []string{e.bbSqfs, "is not a signed SIF", "the site requires signed images"}},
			{"allowed path", e.pathsCf, []string{"exec", filepath.Join(e.allowed, "signed.sif"), "echo", "ok"}, "", 0, "ok\n", nil},
			{"outside allowed paths", e.pathsCf, []string{"exec", e.unsigned, "echo", "ok"}, "", 255, "", []string{e.unsigned, "outside the allowed image paths", e.allowed}},
			{"symlink out of allowed paths", e.pathsCf, []string{"exec", e.outside, "echo", "ok"}, "", 255, "", []string{e.signed, "outside the allowed image paths"}},
			{"sandbox outside allowed paths", e.pathsCf, []string{"exec", e.bbTree, "echo", "ok"}, "", 255, "", []string{e.bbTree, "outside the allowed image paths"}},
			{"keys alone ask nothing", e.keysOnlyCf, []string{"exec", e.unsigned, "echo", "ok"}, "", 0, "ok\n", nil},
		}
		for _, tt := range tests {
			t.Run(string(as)+"/"+tt.name, func(t *testing.T) {
				args := append([]string{tt.args[0], "--config", tt.conf}, tt.args[1:]...)
				r := e.run(t, as, e.workdir(t), nil, tt.stdin, args...)
				plCheck(t, r, tt.code, tt.stdout, tt.stderr)
			})
		}
	}
	e.nothingLeft(t, before, e.signed, e.unsigned)
}

// TestPolicyConfigFromEnvironment: $HPCCTL_CONFIG carries the policy as --config does.
func TestPolicyConfigFromEnvironment(t *testing.T) {
	e := plSetup(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			r := e.run(t, as, e.workdir(t), []string{"HPCCTL_CONFIG=" + e.requireCf}, "", "exec", e.unsigned, "echo", "ok")
			plCheck(t, r, 255, "", []string{e.unsigned, "not signed"})
		})
	}
}

// TestPolicyCompanion: with no policy (the default) hpcctl starts no companion, so it runs even
// without hpcctl-image beside it; with a policy, a missing companion refuses every image..
func TestPolicyCompanion(t *testing.T) {
	e := plSetup(t)
	alone := filepath.Join(e.root, "alone")
	plMkdir(t, alone)
	lone := *e.ltEnv
	lone.bin = plCopy(t, bins.hpcctl, filepath.Join(alone, "hpcctl"))
	for _, as := range ltWho {
		t.Run(string(as)+"/no policy", func(t *testing.T) {
			r := lone.run(t, as, e.workdir(t), nil, "", "exec", e.unsigned, "echo", "ok")
			plCheck(t, r, 0, "ok\n", nil)
			r = lone.run(t, as, e.workdir(t), nil, "", "exec", "--config", e.keysOnlyCf, e.unsigned, "echo", "ok")
			plCheck(t, r, 0, "ok\n", nil)
		})
		t.Run(string(as)+"/policy without companion", func(t *testing.T) {
			r := lone.run(t, as, e.workdir(t), nil, "", "exec", "--config", e.requireCf, e.signed, "echo", "ok")
			plCheck(t, r, 255, "", []string{"signature policy cannot be checked", "hpcctl-image"})
		})
	}
}

// plCheck compares a result; a refusal is one line starting "hpcctl: " that says everything in
// want.
func plCheck(t *testing.T, r ltResult, code int, stdout string, want []string) {
	t.Helper()
	if r.code != code || r.stdout != stdout {
		t.Errorf("exit %d (want %d), stdout %q (want %q), stderr %q", r.code, code, r.stdout, stdout, r.stderr)
	}
	if code == 0 {
		return
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hpcctl: ") {
		t.Errorf("want one line of error, got %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not say %q", r.stderr, w)
		}
	}
}

func plMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func plWrite(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func plCopy(t *testing.T, src, dst string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, st.Mode().Perm()|0o444); err != nil {
		t.Fatal(err)
	}
	return dst
}

func plFlip(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
