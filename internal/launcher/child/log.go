package child

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// Step is one thing the setup stage did inside the namespaces (a mount, a bind, pivot_root, the
// privilege drop), as the parent logs it at -d. Every step has the same fields, as runc's init
// relays its JSON log lines, so that a site admin can see why a bind is missing; an empty field
// does not apply to the step.
type Step struct {
	Step   string `json:"step"`
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	Flags  string `json:"flags,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Attrs are the step's fields as slog key-value pairs, empty ones left out.
func (s Step) Attrs() []any {
	attrs := []any{"step", s.Step}
	for _, f := range []struct{ key, value string }{{"source", s.Source}, {"target", s.Target}, {"flags", s.Flags}, {"error", s.Error}} {
		if f.value != "" {
			attrs = append(attrs, f.key, f.value)
		}
	}
	return attrs
}

// ParseStep decodes the Text of a MsgLog message.
func ParseStep(text string) (Step, error) {
	var s Step
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return Step{Step: "unreadable", Error: err.Error()}, err
	}
	return s, nil
}

// stepLog sends Steps to the parent. A nil *stepLog (no -d) does nothing and costs one compare:
// the launch path's start time is benchmarked.
type stepLog struct{ sock int }

// newStepLog returns the Spec's step log: nil unless the Spec asks for debug logging.
func newStepLog(s *spec.Spec) *stepLog {
	if !s.Debug {
		return nil
	}
	return &stepLog{sock: SocketFD}
}

// done logs the step with err, if any, and returns err, so that a step reads
// `if err := log.done(Step{...}, f()); err != nil`.
func (l *stepLog) done(st Step, err error) error {
	if l == nil {
		return err
	}
	if err != nil {
		st.Error = err.Error()
	}
	l.step(st)
	return err
}

// step sends one step to the parent.
func (l *stepLog) step(st Step) {
	if l == nil {
		return
	}
	b, err := json.Marshal(st)
	if err == nil {
		// A lost log line must not fail the launch: the parent reads until the program runs.
		sendPacket(l.sock, MsgLog, b) //nolint:errcheck // best effort, see above
	}
}

// mount logs one of the Spec's mounts, with the flags applyMount uses for it.
func (l *stepLog) mount(m spec.Mount, err error) {
	if l == nil {
		return
	}
	st := Step{Step: string(m.Kind), Source: m.Source, Target: m.Destination, Flags: mountFlagString(m)}
	if m.Kind == spec.KindSymlink {
		st.Flags = ""
	}
	if err != nil {
		st.Error = err.Error()
	}
	l.step(st)
}

// skip logs an optional mount left out, and why.
func (l *stepLog) skip(m spec.Mount, why error) {
	if l == nil {
		return
	}
	l.step(Step{Step: "skip", Source: m.Source, Target: m.Destination, Flags: "optional", Error: why.Error()})
}

// privilegeFlags says what dropPrivileges does, for the step log; nothing when there is none.
func (l *stepLog) privilegeFlags(s *spec.Spec) string {
	if l == nil {
		return ""
	}
	f := fmt.Sprintf("uid=%d,gid=%d", os.Getuid(), os.Getgid())
	if s.NoNewPrivileges {
		f += ",no_new_privs"
	}
	if s.KeepCapabilities {
		return f + ",capabilities=kept"
	}
	return f + ",capabilities=none"
}

// mountFlagString prints a Spec mount's flags and data the way mount(8) does.
func mountFlagString(m spec.Mount) string {
	f := mountFlags(m)
	if m.ReadOnly {
		f |= unix.MS_RDONLY
	}
	s := mount.FlagString(f)
	if m.Data != "" {
		s += "," + m.Data
	}
	return s
}

// skipOptional reports whether an optional mount that failed with err is left out. Only a
// missing path (ENOENT: a host without /etc/localtime, a job directory already gone) is: any other
// failure (EACCES, EPERM, a directory bound onto a file) is a misconfiguration the user must see,
// as spec.Mount.Optional promises.
func skipOptional(m spec.Mount, err error) bool {
	return m.Optional && errors.Is(err, unix.ENOENT)
}
