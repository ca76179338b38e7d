package imagecli

import "testing"

func TestDefaultPullName(t *testing.T) {
	for ref, want := range map[string]string{
		"docker://127.0.0.1:5000/lab/python:3.12":     "python_3.12.sif",
		"docker://127.0.0.1:5000/lab/python":          "python_latest.sif",
		"oras://127.0.0.1:5000/lab/tool:1.0":          "tool_1.0.sif",
		"docker://h/lab/tool@sha256:00":               "tool_latest.sif",
		"https://127.0.0.1:8000/files/img.sif?x=1":    "img.sif",
		"oci-archive:/data/tool.tar":                  "tool_latest.sif",
		"http://127.0.0.1:8000/download?name=img.sif": "download.sif",
		"oci-archive:tool.tar:v2":                     "tool_v2.sif",
	} {
		if got := defaultPullName(ref); got != want {
			t.Errorf("defaultPullName(%q) = %q, want %q", ref, got, want)
		}
	}
}
