package config

// PolicyEmpty reports whether the table sets no signature policy (the default): then no image is
// checked and no companion started.
func (s Signature) PolicyEmpty() bool {
	return !s.RequireSigned && len(s.AllowedPaths) == 0 && !s.VerifyData
}

// CompanionArgs are the arguments of the companion's check-policy command for checking image
// (the name its errors give) against the table.
func (s Signature) CompanionArgs(image string) []string {
	var args []string
	if s.RequireSigned {
		args = append(args, "--require-signed")
	}
	if s.TrustedKeysDir != "" {
		args = append(args, "--trusted-keys-dir", s.TrustedKeysDir)
	}
	for _, p := range s.AllowedPaths {
		args = append(args, "--allowed-path", p)
	}
	if s.VerifyData {
		args = append(args, "--verify-data")
	}
	return append(args, "--", image)
}
