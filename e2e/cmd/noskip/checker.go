package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// checker prints the text of a `go test -json` stream and counts its tests.
type checker struct {
	out            io.Writer
	passed, failed int
	skipped        []string            // "package TestName", in the order they ended
	reasons        map[string][]string // skipped test → its output lines
	outputs        map[string][]string // running test → its output so far
}

func newChecker(out io.Writer) *checker {
	return &checker{out: out, reasons: map[string][]string{}, outputs: map[string][]string{}}
}

// read consumes the stream; lines that are not JSON (a build error on stdout) pass through.
func (c *checker) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			c.line(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *checker) line(line []byte) {
	var ev event
	if !bytes.HasPrefix(line, []byte("{")) || json.Unmarshal(line, &ev) != nil {
		c.out.Write(line) //nolint:errcheck // a lost line of output cannot be reported anywhere else
		return
	}
	if ev.Output != "" {
		io.WriteString(c.out, ev.Output) //nolint:errcheck // as above
	}
	if ev.Test == "" {
		return // package-level events: "ok", "FAIL", "[no test files]"
	}
	key := ev.Package + " " + ev.Test
	switch ev.Action {
	case "output":
		c.outputs[key] = append(c.outputs[key], ev.Output)
	case "pass":
		c.passed++
		delete(c.outputs, key)
	case "fail":
		c.failed++
		delete(c.outputs, key)
	case "skip":
		c.skipped = append(c.skipped, key)
		c.reasons[key] = c.outputs[key]
		delete(c.outputs, key)
	}
}

// summary prints a closing count line and returns an error naming every skipped test, or saying
// that no test ran.
func (c *checker) summary(w io.Writer) error {
	fmt.Fprintf(w, "e2e: %d passed, %d failed, %d skipped\n", c.passed, c.failed, len(c.skipped))
	if len(c.skipped) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d tests skipped; every end-to-end test must run here:", len(c.skipped))
		sort.Strings(c.skipped)
		for _, key := range c.skipped {
			fmt.Fprintf(&b, "\n  %s: %s", key, reason(c.reasons[key]))
		}
		return errors.New(b.String())
	}
	if c.passed+c.failed == 0 {
		return errors.New("no test ran")
	}
	return nil
}

// reason keeps the lines a test logged, without the framework's own "=== RUN"/"--- SKIP" lines.
func reason(lines []string) string {
	var keep []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) == 0 {
		return "(no reason given)"
	}
	return strings.Join(keep, " | ")
}
