package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestAuditArgs(t *testing.T) {
	all := []string{"default", "isolate"}
	for _, tt := range []struct {
		name     string
		o        auditOptions
		args     []string
		wantCmd  []string
		wantErr  string
		wantDirs bool
	}{
		{"dashes", auditOptions{profiles: all}, []string{"i.sif", "--", "prog", "-x"}, []string{"prog", "-x"}, "", false},
		{"no dashes", auditOptions{profiles: all}, []string{"i.sif", "prog"}, []string{"prog"}, "", false},
		{"outputs", auditOptions{profiles: all, outputs: "out"}, []string{"i.sif", "prog"}, []string{"prog"}, "", true},
		{"no command", auditOptions{profiles: all}, []string{"i.sif", "--"}, nil, "missing IMAGE and COMMAND", false},
		{"nothing", auditOptions{profiles: all}, nil, nil, "missing IMAGE and COMMAND", false},
		{"no profile", auditOptions{}, []string{"i.sif", "prog"}, nil, "name at least one profile", false},
		{"twice", auditOptions{profiles: []string{"isolate", "isolate"}}, []string{"i.sif", "prog"}, nil, "isolate is named twice", false},
		{"negative timeout", auditOptions{profiles: all, timeout: -time.Second}, []string{"i.sif", "prog"}, nil, "want a positive duration", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auditArgs(&tt.o, tt.args)
			if tt.wantErr != "" {
				var ue UsageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("error %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.image != "i.sif" || !reflect.DeepEqual(a.command, tt.wantCmd) {
				t.Errorf("image %q command %q, want i.sif %q", a.image, a.command, tt.wantCmd)
			}
			if tt.wantDirs != (a.outputs != "" && a.outputs == a.at && strings.HasPrefix(a.at, "/")) {
				t.Errorf("outputs %q at %q", a.outputs, a.at)
			}
		})
	}
}

func TestRecordedSpecRedacts(t *testing.T) {
	s := &spec.Spec{Args: []string{"prog"}, Env: []string{"SECRET=hunter2", "EMPTY="}}
	if b := string(recordedSpec(*s, false)); strings.Contains(b, "hunter2") || !strings.Contains(b, "SECRET=redacted:") {
		t.Errorf("redacted spec %s", b)
	}
	if b := string(recordedSpec(*s, true)); !strings.Contains(b, "SECRET=hunter2") {
		t.Errorf("spec with values %s", b)
	}
	if s.Env[0] != "SECRET=hunter2" {
		t.Errorf("the launch's own Spec changed: %q", s.Env)
	}
}
