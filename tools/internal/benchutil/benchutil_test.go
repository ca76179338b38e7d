package benchutil

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	v := []time.Duration{5, 1, 4, 2, 3}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{0, 1}, {50, 3}, {90, 4}, {100, 5}} {
		if got := Percentile(v, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %d) = %v, want %v", v, tc.p, got, tc.want)
		}
	}
	if v[0] != 5 {
		t.Errorf("Percentile reordered its input: %v", v)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2 {
		t.Errorf("Median of an even count = %v, want the lower middle 2", got)
	}
}

func TestCredentialUnknownUser(t *testing.T) {
	if _, err := Credential("no-such-user-hpcctl"); err == nil {
		t.Fatal("Credential of an unknown user did not fail")
	}
}
