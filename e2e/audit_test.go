package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/audit"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// auditJSON runs hpcctl audit --json and decodes the report; the status must be want.
func (e *ltEnv) auditJSON(t *testing.T, as ltAs, dir string, env []string, want int, args ...string) audit.Report {
	t.Helper()
	r := e.run(t, as, dir, env, "", append([]string{"audit", "--json"}, args...)...)
	if r.code != want {
		t.Fatalf("hpcctl audit %q: exit %d, want %d; stderr %q", args, r.code, want, r.stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("audit report: %v: %q (stderr %q)", err, r.stdout, r.stderr)
	}
	return rep
}

func runOf(t *testing.T, rep audit.Report, profile string) audit.Run {
	t.Helper()
	for _, r := range rep.Runs {
		if r.Profile == profile {
			return r
		}
	}
	t.Fatalf("no %s run in %+v", profile, rep.Runs)
	return audit.Run{}
}

// likelyCauses returns the likely causes named for the first difference of a profile.
func likelyCauses(rep audit.Report, profile string) []string {
	var names []string
	for _, d := range rep.Differences {
		if d.Profile != profile {
			continue
		}
		for _, c := range d.Causes {
			if c.Likely {
				names = append(names, string(c.Kind)+":"+c.Name)
			}
		}
		return names
	}
	return nil
}

// TestAuditHostVariable: a host variable that changes the output is found under default, named as
// the likely cause, and isolate does not see it.
func TestAuditHostVariable(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			env := []string{"AUDIT_GREETING=hello-from-the-host"}
			cmd := []string{e.bb, "--", "/bin/sh", "-c", "echo greeting=${AUDIT_GREETING:-none}"}
			rep := e.auditJSON(t, as, e.workdir(t), env, 0, cmd...)
			if rep.Same || rep.Reference != "isolate" || len(rep.Runs) != 4 {
				t.Fatalf("report: same %v, reference %s, %d runs", rep.Same, rep.Reference, len(rep.Runs))
			}
			if got := runOf(t, rep, "default").Stdout.Digest; got != sha("greeting=hello-from-the-host\n") {
				t.Errorf("default printed %s, want the host's greeting", got)
			}
			if got := runOf(t, rep, "isolate").Stdout.Digest; got != sha("greeting=none\n") {
				t.Errorf("isolate printed %s, want none", got)
			}
			// The variable is the only likely cause among the variables (a package in ~/.local, if
			// the user has one, is always a likely cause too).
			var envCauses []string
			for _, c := range likelyCauses(rep, "default") {
				if strings.HasPrefix(c, "env:") || strings.HasPrefix(c, "locale:") {
					envCauses = append(envCauses, c)
				}
			}
			if strings.Join(envCauses, ",") != "env:AUDIT_GREETING" {
				t.Errorf("default: likely causes %q, want env:AUDIT_GREETING", likelyCauses(rep, "default"))
			}
			text := e.run(t, as, e.workdir(t), env, "", append([]string{"audit", "--expect-same", "--profiles", "default,isolate"}, cmd...)...)
			if text.code != 3 || !strings.Contains(text.stdout, "default: stdout differs") || !strings.Contains(text.stdout, "likely cause: host variable AUDIT_GREETING passed through") {
				t.Errorf("--expect-same: exit %d, want 3, with the cause named:\n%s\nstderr %q", text.code, text.stdout, text.stderr)
			}
			if strings.Contains(text.stdout, "hello-from-the-host") {
				t.Errorf("the report shows the variable's value without --show-values:\n%s", text.stdout)
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// TestAuditPythonUserSite: a package in the host's ~/.local shadows the image's under default; the
// audit names the user site directory, and isolate imports the image's.
func TestAuditPythonUserSite(t *testing.T) {
	e := ltSetup(t)
	deb, pyver, imageMods := shadowImage(t, e)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			shadowInHome(t, as, pyver)
			rep := e.auditJSON(t, as, e.workdir(t), nil, 0, "--profiles", "default,isolate",
				"-B", imageMods+":/usr/local/lib/python"+pyver+"/dist-packages:ro",
				deb, "--", "python3", "-c", "import shadowme; print(shadowme.WHO)")
			if got := runOf(t, rep, "default").Stdout.Digest; got != sha("host-home\n") {
				t.Errorf("default imported %s, want the host's module", got)
			}
			if got := runOf(t, rep, "isolate").Stdout.Digest; got != sha("image\n") {
				t.Errorf("isolate imported %s, want the image's module", got)
			}
			want := "usersite:~/.local/lib/python" + pyver + "/site-packages"
			if got := likelyCauses(rep, "default"); len(got) == 0 || got[0] != want {
				t.Errorf("likely causes %q, want %s first", got, want)
			}
		})
	}
}

// TestAuditRecordReplay: a record replayed on the same machine is the same (exit 0); a changed
// host variable that the output shows makes it differ (exit 3) and is named.
func TestAuditRecordReplay(t *testing.T) {
	e := ltSetup(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			rec, out := filepath.Join(dir, "audit.json"), filepath.Join(dir, "out")
			cmd := []string{"audit", "--record", rec, "--outputs", out, "--profiles", "default,containall,isolate", e.bb, "--",
				"/bin/sh", "-c", "echo v=$AUDIT_V; echo data > " + out + "/result.txt"}
			r := e.run(t, as, dir, []string{"AUDIT_V=1"}, "", cmd...)
			if r.code != 0 {
				t.Fatalf("record: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			f, err := os.Open(rec)
			if err != nil {
				t.Fatal(err)
			}
			record, err := audit.ReadRecord(f, rec)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(record.Image.Digest, "sha256:") || record.Image.Signature == "" || record.Host.Kernel == "" ||
				record.Version == "" || len(record.Runs) != 3 || len(record.Runs[0].Spec) == 0 || record.Runs[0].Outputs["result.txt"] != sha("data\n") {
				t.Errorf("record lacks something: %+v", record)
			}
			if b, _ := os.ReadFile(rec); strings.Contains(string(b), "AUDIT_V=1") || strings.Contains(string(b), `"env.AUDIT_V": "1"`) {
				t.Errorf("the record holds a variable's value without --show-values")
			}
			same := e.run(t, as, dir, []string{"AUDIT_V=1"}, "", "audit", "--replay", rec)
			if same.code != 0 || !strings.Contains(same.stdout, "same: every profile gave the results of the record") {
				t.Errorf("replay: exit %d, want 0 and same:\n%s\nstderr %q", same.code, same.stdout, same.stderr)
			}
			other := e.run(t, as, dir, []string{"AUDIT_V=2"}, "", "audit", "--replay", rec)
			if other.code != 3 || !strings.Contains(other.stdout, "default: stdout differs") || !strings.Contains(other.stdout, "variable AUDIT_V has another value") {
				t.Errorf("replay with another value: exit %d, want 3 and AUDIT_V named:\n%s\nstderr %q", other.code, other.stdout, other.stderr)
			}
		})
	}
}

// TestAuditOutcomes: a failing command, a hanging one and one that writes nothing are reported,
// with exit status 0, and nothing is left running.
func TestAuditOutcomes(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			rep := e.auditJSON(t, as, dir, nil, 0, "--outputs", filepath.Join(dir, "fail"), e.bb, "--", "/bin/sh", "-c", "echo oops >&2; exit 7")
			for _, r := range rep.Runs {
				if r.Outcome != audit.OutcomeExited || r.Status != 7 || len(r.Outputs) != 0 || r.Stderr.Digest != sha("oops\n") {
					t.Errorf("failing command under %s: %+v", r.Profile, r)
				}
			}
			if !rep.Same {
				t.Errorf("a command that fails the same way everywhere: %+v", rep.Differences)
			}
			hang := e.run(t, as, dir, nil, "", "audit", "--timeout", "2s", "--profiles", "default,isolate", e.bb, "--", "/bin/sh", "-c", "sleep 600; echo never")
			if hang.code != 0 || strings.Count(hang.stdout, "timed out") != 2 {
				t.Errorf("hanging command: exit %d, want 0 and two timed out runs:\n%s\nstderr %q", hang.code, hang.stdout, hang.stderr)
			}
			quiet := e.run(t, as, dir, nil, "", "audit", "--outputs", filepath.Join(dir, "quiet"), "--profiles", "contain,isolate", e.bb, "--", "true")
			if quiet.code != 0 || strings.Count(quiet.stdout, "none written") != 2 || !strings.Contains(quiet.stdout, "same:") {
				t.Errorf("command writing nothing: exit %d:\n%s\nstderr %q", quiet.code, quiet.stdout, quiet.stderr)
			}
			missing := e.run(t, as, dir, nil, "", "audit", "--profiles", "isolate", e.bb, "--", "no-such-program")
			if missing.code != 0 || !strings.Contains(missing.stdout, "not started, exit 127") || !strings.Contains(missing.stdout, "isolate: ") || !strings.Contains(missing.stdout, "no-such-program") {
				t.Errorf("missing program: exit %d:\n%s\nstderr %q", missing.code, missing.stdout, missing.stderr)
			}
			bad := e.run(t, as, dir, nil, "", "audit", "--profiles", "nosuch", e.bb, "--", "true")
			if bad.code != 255 || !strings.Contains(bad.stderr, "nosuch") {
				t.Errorf("unknown profile: exit %d, stderr %q, want 2 naming it", bad.code, bad.stderr)
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// TestAuditRecordSignature: a record names the image's signature status, which hpcctl asks
// hpcctl-image (installed beside it) for, and the hpcctl version.
func TestAuditRecordSignature(t *testing.T) {
	e := ltSetup(t)
	h := hpcctl{bin: bins.hpcctl, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(),
		"HPCCTL_KEY_PASSPHRASE=e2e passphrase", "SOURCE_DATE_EPOCH=1700000000",
	}}
	if code, out, errOut := h.run(t, "key", "newpair", "--name", "site"); code != 0 {
		t.Fatalf("key newpair: %d %s %s", code, out, errOut)
	}
	dir := t.TempDir()
	signed, unsigned := filepath.Join(dir, "signed.sif"), filepath.Join(dir, "unsigned.sif")
	data, err := os.ReadFile(e.bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{signed, unsigned} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, errOut := h.run(t, "sign", "--key", "site", signed); code != 0 {
		t.Fatalf("sign: %d %s", code, errOut)
	}
	for _, tt := range []struct{ image, want string }{
		{signed, "verified: signed by site"}, {unsigned, "not verified: "},
	} {
		rec := filepath.Join(dir, filepath.Base(tt.image)+".json")
		if code, out, errOut := h.run(t, "audit", "--profiles", "isolate", "--record", rec, tt.image, "--", "true"); code != 0 {
			t.Fatalf("audit --record: %d %s %s", code, out, errOut)
		}
		f, err := os.Open(rec)
		if err != nil {
			t.Fatal(err)
		}
		r, err := audit.ReadRecord(f, rec)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(r.Image.Signature, tt.want) || r.Version != testVersion {
			t.Errorf("%s: signature %q, want %q..., version %q", tt.image, r.Image.Signature, tt.want, r.Version)
		}
	}
}
