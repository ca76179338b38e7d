package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// refSIFs lists the SIF files (and anything half-written) in a cache's sif directory.
func refSIFs(t testing.TB, cache string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(cache, "sif"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// refPushBusybox copies the busybox fixture into the test registry under a repository of this
// test's own and returns its name.
func refPushBusybox(t *testing.T, registry string) string {
	t.Helper()
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_BUSYBOX_OCI")
	testutil.NeedCommands(t, "skopeo")
	repo := "hpcctl-e2e-refs/busybox:" + strings.ToLower(sanitize(t.Name()))
	run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":latest", "docker://"+registry+"/"+repo).
		mustSucceed(t, "skopeo copy to the registry")
	return repo
}

// TestReferenceRegistry runs docker:// and oras:// references as root and as the plain user, each
// with a cache of its own; a second run, and a pull that resolves the tag again, fetch no blob; a
// SIF pushed to oras:// comes back byte-identical, with Apptainer's media types.
func TestReferenceRegistry(t *testing.T) {
	registry := needRegistry(t)
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	repo := refPushBusybox(t, registry)
	addr, counter := btProxy(t, registry)
	dir := workDir(t, u)
	rootCache := filepath.Join(dir, "root-cache")
	rootEnv := []string{"HPCCTL_CACHEDIR=" + rootCache}
	docker := "docker://" + addr + "/" + repo

	r := btRun(t, dir, rootEnv, "exec", "--no-https", docker, "/bin/busybox", "echo", "ok")
	if r.Code != 0 || r.Stdout != "ok\n" {
		t.Fatalf("exec %s as root: exit %d, stdout %q, stderr %q", docker, r.Code, r.Stdout, r.Stderr)
	}
	if got := counter.take(); len(got) == 0 {
		t.Errorf("the first exec of %s fetched no blob", docker)
	}
	btRun(t, dir, rootEnv, "run", "--no-https", docker, "true").mustSucceed(t, "second run")
	pulled := filepath.Join(dir, "pulled.sif")
	btRun(t, dir, rootEnv, "pull", "--no-https", pulled, docker).mustSucceed(t, "pull")
	if got := counter.take(); len(got) != 0 {
		t.Errorf("a second run and a pull of %s fetched blobs again: %q", docker, got)
	}

	r = btRun(t, dir, rootEnv, "inspect", "--no-https", docker).mustSucceed(t, "inspect a reference")
	if !strings.Contains(r.Stdout, "Source:") || !strings.Contains(r.Stdout, "@sha256:") {
		t.Errorf("inspect %s shows no pinned source:\n%s", docker, r.Stdout)
	}
	empty := filepath.Join(dir, "unused-cache")
	r = btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + empty}, "exec", "--no-https", "--disable-cache", docker, "/bin/busybox", "echo", "nocache")
	if r.Code != 0 || r.Stdout != "nocache\n" {
		t.Errorf("exec --disable-cache: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if sifs := refSIFs(t, empty); len(sifs) != 0 {
		t.Errorf("exec --disable-cache left %q in the cache", sifs)
	}
	counter.take()

	// The plain user: its own cache (XDG_CACHE_HOME), none of root's.
	xdg := filepath.Join(workDir(t, u), "xdg")
	userEnv := []string{"XDG_CACHE_HOME=" + xdg}
	r = btRunUser(t, u, userEnv, "exec", "--no-https", docker, "/bin/busybox", "echo", "user-ok")
	if r.Code != 0 || r.Stdout != "user-ok\n" {
		t.Fatalf("exec %s as %s: exit %d, stdout %q, stderr %q", docker, u.Name, r.Code, r.Stdout, r.Stderr)
	}
	if sifs := refSIFs(t, filepath.Join(xdg, "hpcctl")); len(sifs) != 1 {
		t.Errorf("%s's cache holds %q, want one SIF", u.Name, sifs)
	}
	counter.take()

	// ORAS: push what root pulled, pull it back, run it.
	oras := "oras://" + addr + "/hpcctl-e2e-refs/sif:" + strings.ToLower(sanitize(t.Name()))
	btRun(t, dir, rootEnv, "push", "--no-https", pulled, oras).mustSucceed(t, "push")
	refCheckORASManifest(t, registry, strings.TrimPrefix(oras, "oras://"+addr+"/"))
	back := filepath.Join(dir, "back.sif")
	btRun(t, dir, rootEnv, "pull", "--no-https", back, oras).mustSucceed(t, "pull oras")
	if btSHA256(t, back) != btSHA256(t, pulled) {
		t.Errorf("the SIF pulled from %s differs from the one pushed", oras)
	}
	counter.take()
	r = btRunUser(t, u, userEnv, "exec", "--no-https", oras, "/bin/busybox", "echo", "oras-ok")
	if r.Code != 0 || r.Stdout != "oras-ok\n" {
		t.Fatalf("exec %s as %s: exit %d, stdout %q, stderr %q", oras, u.Name, r.Code, r.Stdout, r.Stderr)
	}
	if got := counter.take(); len(got) != 1 {
		t.Errorf("the first exec of %s as %s fetched %q, want the SIF blob once", oras, u.Name, got)
	}
	btRunUser(t, u, userEnv, "exec", "--no-https", oras, "/bin/true").mustSucceed(t, "second exec of oras")
	btRunUser(t, u, userEnv, "pull", "--no-https", "--force", "again.sif", oras).mustSucceed(t, "pull oras again")
	if got := counter.take(); len(got) != 0 {
		t.Errorf("a second exec and a pull of %s fetched blobs again: %q", oras, got)
	}

	r = btRun(t, dir, rootEnv, "cache", "list", "--json")
	var list struct {
		Entries []struct {
			Type   string   `json:"type"`
			UsedBy []string `json:"used_by"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		t.Fatalf("cache list --json: %v\n%s", err, r.Stdout)
	}
	var refs []string
	for _, e := range list.Entries {
		if e.Type == "sif" {
			refs = append(refs, e.UsedBy...)
		}
	}
	if strings.Join(refs, " ") != docker+" "+oras && strings.Join(refs, " ") != oras+" "+docker {
		t.Errorf("cache list shows SIFs used by %q, want %s and %s", refs, docker, oras)
	}
}

// refCheckORASManifest reads the pushed manifest straight from the registry: the media types
// must be those Apptainer pushes and pulls.
func refCheckORASManifest(t *testing.T, registry, repoTag string) {
	t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	req, err := http.NewRequest(http.MethodGet, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			MediaType string `json:"mediaType"`
			Size      int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
		} `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("manifest of %s: %v", repoTag, err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.sylabs.sif.config.v1+json" ||
		m.Config.Size != 2 || len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.sylabs.sif.layer.v1.sif" {
		t.Errorf("manifest of %s is %+v, want Apptainer's SIF artifact", repoTag, m)
	}
}

// TestReferenceBadInputs: each bad reference gives one line naming it and what to do, exits 1
// quickly, and leaves nothing in the cache.
func TestReferenceBadInputs(t *testing.T) {
	registry := needRegistry(t)
	needRoot(t)
	repo := refPushBusybox(t, registry)
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	for _, c := range []struct {
		name, ref string
		names     []string
	}{
		{"closed port", "docker://127.0.0.1:1/x/y:1", []string{"127.0.0.1:1", "cannot reach"}},
		{"unknown host", "oras://nohost.invalid/x/y:1", []string{"nohost.invalid", "cannot reach"}},
		{"missing tag", "docker://" + registry + "/" + strings.Split(repo, ":")[0] + ":missing", []string{":missing", "not found"}},
		{"missing oras tag", "oras://" + registry + "/hpcctl-e2e-refs/none:missing", []string{"none:missing", "not found"}},
		{"not a SIF", "oras://" + registry + "/" + repo, []string{repo, "not a SIF"}},
		{"http 404", srv.URL + "/img.sif", []string{srv.URL + "/img.sif", "404"}},
	} {
		t.Run(sanitize(c.name), func(t *testing.T) {
			start := time.Now()
			r := btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + cache}, "exec", "--no-https", c.ref, "/bin/true")
			btCheckFailure(t, r, 255, c.names...) // a failure of hpcctl itself
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("%s took %v to fail", c.ref, d)
			}
			if sifs := refSIFs(t, cache); len(sifs) != 0 {
				t.Errorf("the cache holds %q after a failed fetch", sifs)
			}
		})
	}
}

// TestReferenceCleanDuringPull starts a pull from a server that stops half-way, cleans the cache
// meanwhile, and lets the pull finish: the clean waits for it, the pull's output is whole, and
// the clean then empties the cache.
func TestReferenceCleanDuringPull(t *testing.T) {
	needRoot(t)
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_BUSYBOX_OCI")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	env := []string{"HPCCTL_CACHEDIR=" + cache}
	image := filepath.Join(dir, "image.sif")
	btRun(t, dir, env, "build", image, "oci:"+layout+":latest").mustSucceed(t, "build")
	body, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	halfSent, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2]) //nolint:errcheck // the client sees a short body
		w.(http.Flusher).Flush()
		close(halfSent)
		<-release
		w.Write(body[len(body)/2:]) //nolint:errcheck // as above
	}))
	t.Cleanup(srv.Close)
	out := filepath.Join(dir, "out.sif")
	pull := btCmd(dir, env, "pull", out, srv.URL+"/image.sif")
	var pullErr bytes.Buffer
	pull.Stderr = &pullErr
	if err = pull.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-halfSent:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatalf("the pull did not start downloading: %s", pullErr.String())
	}
	clean := btCmd(dir, env, "cache", "clean")
	cleanErr, err := clean.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cleanOut bytes.Buffer
	clean.Stdout = &cleanOut
	if err = clean.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 200)
	n, _ := io.ReadAtLeast(cleanErr, line, 10)
	if !strings.Contains(string(line[:n]), "waiting") {
		t.Errorf("cache clean during a pull said %q, want that it waits", line[:n])
	}
	close(release)
	if err = pull.Wait(); err != nil {
		t.Fatalf("pull during a clean: %v\n%s", err, pullErr.String())
	}
	rest, _ := io.ReadAll(cleanErr)
	if err = clean.Wait(); err != nil {
		t.Fatalf("cache clean: %v\n%s%s", err, line[:n], rest)
	}
	if btSHA256(t, out) != btSHA256(t, image) {
		t.Errorf("the pull during a clean wrote a different file")
	}
	if !strings.Contains(cleanOut.String(), "removed ") {
		t.Errorf("cache clean printed %q", cleanOut.String())
	}
	if sifs := refSIFs(t, cache); len(sifs) != 0 {
		t.Errorf("after the clean the cache still holds %q", sifs)
	}
}

// TestReferenceSiteCacheDir: cache_dir in hpcctl.conf holds a directory per user, used by
// references and by build alike, unless $HPCCTL_CACHEDIR says otherwise.
func TestReferenceSiteCacheDir(t *testing.T) {
	needRoot(t)
	archive := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o1777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "hpcctl.conf")
	if err := os.WriteFile(conf, []byte("cache_dir = \""+site+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"HPCCTL_CONFIG=" + conf}
	mine := filepath.Join(site, strconv.Itoa(os.Getuid()))
	btRun(t, dir, env, "build", filepath.Join(dir, "b.sif"), "oci-archive:"+archive).mustSucceed(t, "build with cache_dir")
	blobs, err := filepath.Glob(filepath.Join(mine, "oci", "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Errorf("build with cache_dir put no blob in %s: %v", mine, err)
	}
	r := btRun(t, dir, env, "exec", "oci-archive:"+archive, "/bin/busybox", "echo", "ok")
	if r.Code != 0 || r.Stdout != "ok\n" {
		t.Fatalf("exec oci-archive: with cache_dir: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if sifs := refSIFs(t, mine); len(sifs) != 1 {
		t.Errorf("%s holds %q, want the one SIF", mine, sifs)
	}
}

// TestReferenceInterruptedFetch stops hpcctl with SIGTERM half-way through a download: it exits
// at once, and the cache holds no part of the file.
func TestReferenceInterruptedFetch(t *testing.T) {
	needRoot(t)
	halfSent, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2000000")
		w.Write(make([]byte, 1000000)) //nolint:errcheck // the client is stopped meanwhile
		w.(http.Flusher).Flush()
		close(halfSent)
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	cmd := btCmd(dir, []string{"HPCCTL_CACHEDIR=" + cache}, "exec", srv.URL+"/big.sif", "/bin/true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-halfSent:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill() //nolint:errcheck // the test fails anyway
		t.Fatalf("the download did not start: %s", stderr.String())
	}
	time.Sleep(100 * time.Millisecond) // the first half reaches the cache's temporary file
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("hpcctl exited 0 after SIGTERM during a fetch")
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill() //nolint:errcheck // the test fails anyway
		t.Fatalf("hpcctl did not stop within 10 s of SIGTERM during a fetch")
	}
	if files := refSIFs(t, cache); len(files) != 0 {
		t.Errorf("an interrupted fetch left %q in the cache", files)
	}
}
