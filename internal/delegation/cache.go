package delegation

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/statefile"
)

// Cache is what ratchet remembers of one attachment between ADD and DEL: the
// delegates it ran (in order, with their interface names and netconfs) and,
// once ADD has finished, each delegate's Result. A chain's netconf holds
// each of its plugins as it ran, runtimeConfig included, so that DEL needs
// the current config for nothing; the prevResult its plugins get at DEL and
// CHECK is the chain's Result that libcni cached under chains/ at ADD (a
// chain whose ADD did not finish has none, and is deleted without one).
type Cache struct {
	ContainerID string            `json:"containerID"`
	IfName      string            `json:"ifname"`
	NetNS       string            `json:"netns,omitempty"`
	Args        string            `json:"args,omitempty"`
	CNIVersion  string            `json:"cniVersion"`
	Delegates   []config.Delegate `json:"delegates"`
	Results     []json.RawMessage `json:"results,omitempty"`
}

// ErrNoCache is returned by ReadCache when no cache exists for an attachment.
var ErrNoCache = errors.New("no cache for this attachment")

// cacheSuffix ends every cache file name, to tell them from temp files.
const cacheSuffix = ".json"

func (r *Runner) cachePath(containerID, ifName string) string {
	return filepath.Join(r.CacheDir, containerID+"-"+ifName+cacheSuffix)
}

// ReadCache reads the cache of an attachment. A missing file is ErrNoCache;
// an unreadable or corrupt one is another error.
func (r *Runner) ReadCache(containerID, ifName string) (*Cache, error) {
	path := r.cachePath(containerID, ifName)
	data, err := statefile.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCache
	}
	if err != nil {
		return nil, fmt.Errorf("read cache %s: %w", path, err)
	}
	c := &Cache{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("corrupt cache %s: %w", path, err)
	}
	if c.ContainerID != containerID || c.IfName != ifName || len(c.Delegates) == 0 {
		return nil, fmt.Errorf("corrupt cache %s: holds %q/%q with %d delegates", path, c.ContainerID, c.IfName, len(c.Delegates))
	}
	return c, nil
}

// writeCache writes the cache atomically through statefile (a temp file
// created O_EXCL|O_NOFOLLOW in the 0700 cache dir, then a rename; mode
// 0600; a link planted in the dir is never followed). It does not fsync:
// the cache must survive the plugin being killed (the page cache does),
// while a machine crash takes the pod's netns and links with it anyway.
func (r *Runner) writeCache(c *Cache) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode cache: %w", err)
	}
	path := r.cachePath(c.ContainerID, c.IfName)
	if err := statefile.WriteFile(r.CacheDir, filepath.Base(path), data); err != nil {
		return fmt.Errorf("write cache %s: %w", path, err)
	}
	return nil
}

// removeCache deletes an attachment's cache; a missing one is fine.
func (r *Runner) removeCache(containerID, ifName string) error {
	err := os.Remove(r.cachePath(containerID, ifName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cache: %w", err)
	}
	return nil
}

// cachedAttachments lists the (container ID, ifname) of every cache file.
func (r *Runner) cachedAttachments() ([][2]string, error) {
	entries, err := os.ReadDir(r.CacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache dir %s: %w", r.CacheDir, err)
	}
	var out [][2]string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, cacheSuffix) {
			continue
		}
		c, err := readCacheFile(filepath.Join(r.CacheDir, name))
		if err != nil {
			continue // a corrupt cache cannot be collected by its content
		}
		out = append(out, [2]string{c.ContainerID, c.IfName})
	}
	return out, nil
}

func readCacheFile(path string) (*Cache, error) {
	data, err := statefile.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Cache{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, err
	}
	return c, nil
}
