package fetch

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestORASCredentials: a registry that wants basic authentication gets the --authfile's
// credentials (containers/docker auth.json format), and a clear line when there are none. The fake
// speaks plain HTTP, which --no-https reaches after TLS fails.
func TestORASCredentials(t *testing.T) {
	const user, pass = "u", "p"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)) //nolint:errcheck // the client reads what it can
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	authFile := filepath.Join(t.TempDir(), "auth.json")
	creds := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	if err := os.WriteFile(authFile, []byte(`{"auths":{"`+host+`":{"auth":"`+creds+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir()) // no docker config of the test runner's
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	ref := "oras://" + host + "/lab/tool:1"

	_, err := Fetch(context.Background(), ref, Options{CacheDir: t.TempDir(), Insecure: true, AuthFile: authFile})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Fetch with the credentials: %v, want the registry's not found", err)
	}
	_, err = Fetch(context.Background(), ref, Options{CacheDir: t.TempDir(), Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "asks for credentials") || !strings.Contains(err.Error(), "--authfile") {
		t.Errorf("Fetch without credentials: %v, want a line that asks for credentials and names --authfile", err)
	}
	wrong := filepath.Join(t.TempDir(), "auth.json")
	bad := base64.StdEncoding.EncodeToString([]byte(user + ":wrong"))
	if err = os.WriteFile(wrong, []byte(`{"auths":{"`+host+`":{"auth":"`+bad+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), ref, Options{CacheDir: t.TempDir(), Insecure: true, AuthFile: wrong})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("Fetch with wrong credentials: %v, want that the registry refused them", err)
	}
	_, err = Fetch(context.Background(), ref, Options{CacheDir: t.TempDir(), AuthFile: authFile})
	if err == nil || !strings.Contains(err.Error(), "--no-https") {
		t.Errorf("Fetch from a plain-HTTP registry without --no-https: %v, want a hint at --no-https", err)
	}
}
