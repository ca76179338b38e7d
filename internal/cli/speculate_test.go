package cli

import "testing"

// Only a launch verb whose flags before the image leave the namespaces alone is speculated on:
// anything unknown is not.
func TestSpeculable(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"exec", "img.sif", "true"}, true},
		{[]string{"-d", "run", "img.sif"}, true},
		{[]string{"shell", "-B", "/a:/b", "--env=X=1", "-e", "--pwd", "/w", "img.sif"}, true},
		{[]string{"test", "--bind=/a", "--no-home", "img.sif"}, true},
		{[]string{"exec", "--containall", "img.sif", "true"}, false},
		{[]string{"exec", "-C", "img.sif"}, false},
		{[]string{"exec", "--fakeroot", "img.sif"}, false},
		{[]string{"exec", "--config", "x.conf", "img.sif"}, false},
		{[]string{"exec", "-B"}, false},
		{[]string{"exec", "--cleanenv=false", "img.sif"}, false},
		{[]string{"instance", "start", "img.sif", "x"}, false},
		{[]string{"build", "x.sif", "dir"}, false},
		{[]string{"-v"}, false},
		{nil, false},
	} {
		if got := speculable(tc.args); got != tc.want {
			t.Errorf("speculable(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
