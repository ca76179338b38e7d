package cli

import "github.com/hpcctl/hpcctl/internal/refcache"

// CacheDir is the image cache for this user: $HPCCTL_CACHEDIR, else cache_dir from the
// configuration (--config FILE or the site's), else ~/.cache/hpcctl.
func CacheDir(configFlag string) (string, error) {
	conf, err := loadConfig(configFlag)
	if err != nil {
		return "", err
	}
	return refcache.Dir(conf.CacheDir)
}
