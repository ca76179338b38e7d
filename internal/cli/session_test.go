package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/session"
)

// TestSessionsTable: the list keeps its columns and adds the request counts last, "-" for a
// holder that serves with squashfuse_ll (it does not count); a path with a tab or a newline is
// quoted, so that it stays one cell of one row.
func TestSessionsTable(t *testing.T) {
	var out bytes.Buffer
	err := sessionsTable(&out, []session.Info{
		{PID: 41, Containers: 1, Idle: 30 * time.Second, Image: "/images/a.sif", Requests: "LOOKUP=12 READ=40"},
		{PID: 42, Containers: 0, Idle: time.Minute, Image: "/images/b.sif"},
		{PID: 43, Containers: 2, Idle: time.Minute, Image: "/images/c\td\n.sif"},
	})
	want := []string{
		"PID  CONTAINERS  IDLE TIMEOUT  IMAGE                 REQUESTS",
		"41   1           30s           /images/a.sif         LOOKUP=12 READ=40",
		"42   0           1m0s          /images/b.sif         -",
		`43   2           1m0s          "/images/c\td\n.sif"  -`,
	}
	if w := strings.Join(want, "\n") + "\n"; err != nil || out.String() != w {
		t.Errorf("table (%v):\n%s\nwant:\n%s", err, out.String(), w)
	}
}
