package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestChecker(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		wantErr string // "" for success
		wantOut []string
	}{
		{
			name: "all pass",
			stream: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}
`,
			wantOut: []string{"=== RUN   TestA\n", "ok  \tp\t0.1s\n", "e2e: 1 passed, 0 failed, 0 skipped\n"},
		},
		{
			name: "a skip fails with its reason",
			stream: `{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    x_test.go:9: needs root\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"pass","Package":"p","Test":"TestC"}
`,
			wantErr: "p TestB: x_test.go:9: needs root",
			wantOut: []string{"--- SKIP: TestB", "e2e: 1 passed, 0 failed, 1 skipped\n"},
		},
		{
			name:    "no test ran",
			stream:  `{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s [no tests to run]\n"}` + "\n",
			wantErr: "no test ran",
		},
		{
			name:    "text lines pass through",
			stream:  "# p\n./x.go:1: syntax error\n",
			wantErr: "no test ran",
			wantOut: []string{"./x.go:1: syntax error\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := newChecker(&out)
			if err := c.read(strings.NewReader(tt.stream)); err != nil {
				t.Fatal(err)
			}
			err := c.summary(&out)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("summary: %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("summary: %v, want an error containing %q", err, tt.wantErr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
		})
	}
}

func TestRunPassesExitStatus(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"sh", "-c", "exit 7"}, &out, &errOut); code != 7 {
		t.Errorf("exit status %d, want the command's 7", code)
	}
	if code := run(nil, &out, &errOut); code != 2 {
		t.Errorf("no arguments: exit status %d, want 2", code)
	}
}
