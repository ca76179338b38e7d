package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// RecordFormat names the record's format and version.
const RecordFormat = "hpcctl-audit-record/1"

// Record is a provenance record: enough to check later what ran, where, and what it produced.
type Record struct {
	Format  string     `json:"format"`
	Version string     `json:"hpcctlVersion"`
	Image   ImageFacts `json:"image"`
	Command []string   `json:"command"`
	// Outputs is the outputs directory the command wrote in, "" for none.
	Outputs string `json:"outputs,omitempty"`
	// Timeout is the time limit of each run, as a Go duration ("" for none).
	Timeout string `json:"timeout,omitempty"`
	Host    Host   `json:"host"`
	Runs    []Run  `json:"runs"`
}

// ImageFacts identify the image.
type ImageFacts struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	// Signature is the verification status: "verified", "not verified: WHY" or "not checked: WHY".
	Signature string `json:"signature"`
}

// WriteRecord writes the record to path atomically (a reviewer never reads half a record).
func WriteRecord(path string, r Record) error {
	r.Format = RecordFormat
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the audit record: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-record-*")
	if err != nil {
		return fmt.Errorf("write the audit record: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write the audit record %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the audit record %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write the audit record %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the audit record %s: %w", path, err)
	}
	return nil
}

// ReadRecord reads a record written by WriteRecord.
func ReadRecord(r io.Reader, name string) (Record, error) {
	var rec Record
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("audit record %s: %w (give a file written by 'hpcctl audit --record')", name, err)
	}
	if rec.Format != RecordFormat {
		return rec, fmt.Errorf("audit record %s: format %q, want %q (give a file written by 'hpcctl audit --record')", name, rec.Format, RecordFormat)
	}
	if len(rec.Command) == 0 || len(rec.Runs) == 0 {
		return rec, errors.New("audit record " + name + ": no command or no runs in it")
	}
	return rec, nil
}

// Replay compares new runs with a record's, profile by profile: a difference is explained by
// the leaks that changed and by a different kernel, CPU or image.
func Replay(rec Record, image ImageFacts, host Host, runs []Run) []Difference {
	old := map[string]Run{}
	for _, r := range rec.Runs {
		old[r.Profile] = r
	}
	var diffs []Difference
	for _, r := range runs {
		was, ok := old[r.Profile]
		if !ok {
			continue
		}
		want, got := items(was), items(r)
		var causes []Cause
		for _, name := range unionKeys(got, want) {
			if got[name] == want[name] {
				continue
			}
			if causes == nil {
				causes = replayCauses(rec, image, host, r, was)
			}
			diffs = append(diffs, Difference{Profile: r.Profile, Reference: "record", Item: name,
				Got: orAbsent(got[name]), Want: orAbsent(want[name]), Causes: causes})
		}
	}
	return diffs
}

// replayCauses are what changed since the record: the machine, the image, the leaks.
func replayCauses(rec Record, image ImageFacts, host Host, r, was Run) []Cause {
	cs := []Cause{}
	add := func(kind LeakKind, name, then, now string) {
		if then != now {
			cs = append(cs, Cause{Leak: Leak{Kind: kind, Name: name, Text: fmt.Sprintf("%s changed: %s, was %s", name, clip(now, 40), clip(then, 40))}, Likely: true})
		}
	}
	add(LeakImage, "image digest", rec.Image.Digest, image.Digest)
	add(LeakHost, "kernel", rec.Host.Kernel, host.Kernel)
	add(LeakHost, "CPU model", rec.Host.CPUModel, host.CPUModel)
	add(LeakHost, "CPU flags", rec.Host.CPUFlags, host.CPUFlags)
	// Leaks on both sides, compared by name and (redacted or not) value.
	then := map[string]Leak{}
	for _, l := range was.Leaks {
		then[l.key()] = l
	}
	for _, l := range r.Leaks {
		if t, ok := then[l.key()]; !ok || t.Text != l.Text {
			cs = append(cs, Cause{Leak: l})
		}
		delete(then, l.key())
	}
	for _, l := range was.Leaks {
		if _, ok := then[l.key()]; ok {
			cs = append(cs, Cause{Leak: Leak{Kind: l.Kind, Name: l.Name, Text: "no longer: " + l.Text}})
		}
	}
	for _, k := range was.Probe.keys("env.") {
		if v, ok := r.Probe[k]; ok && RedactValue(v) != was.Probe[k] && v != was.Probe[k] {
			cs = append(cs, Cause{Leak: Leak{Kind: LeakEnv, Name: k[4:], Text: "variable " + k[4:] + " has another value"}})
		}
	}
	sortLeaks(cs)
	return cs
}
