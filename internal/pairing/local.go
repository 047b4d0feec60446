package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/statefile"
)

// localState is what this host remembers of a ratchet pod's container, so
// that DEL knows the pod without asking Docker (whose container may be
// gone), GC finds what DEL could not finish, and the plugin can remove the
// pod's link ends when the agent is down.
type localState = agentapi.PodState

func (m *Manager) localPath(containerID string) string {
	return agentapi.StatePath(m.conf.CNIDir, containerID)
}

// writeLocal records the pod of a container atomically (0600, through
// statefile: a link planted in the state dir is never followed).
func (m *Manager) writeLocal(st localState) error {
	path := m.localPath(st.ContainerID)
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := statefile.WriteFile(filepath.Dir(path), filepath.Base(path), data); err != nil {
		return fmt.Errorf("write pairing state: %w", err)
	}
	return nil
}

// readLocal returns the recorded pod of a container; ok is false when there
// is none (or it is unreadable, or a link).
func (m *Manager) readLocal(containerID string) (localState, bool) {
	st, err := readState(m.localPath(containerID))
	return st, err == nil
}

// readState reads a pod state file.
func readState(path string) (localState, error) { return agentapi.ReadState(path) }

// hasLocal reports whether a pairing state file exists for the container,
// readable or not.
func (m *Manager) hasLocal(containerID string) bool {
	_, err := os.Stat(m.localPath(containerID))
	return err == nil
}

func (m *Manager) removeLocal(containerID string) error {
	err := os.Remove(m.localPath(containerID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pairing state: %w", err)
	}
	return nil
}

// localContainers lists the container IDs with local pairing state.
func (m *Manager) localContainers() []string {
	entries, _ := os.ReadDir(filepath.Join(m.conf.CNIDir, "pairing"))
	var ids []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && name != "" {
			ids = append(ids, name)
		}
	}
	return ids
}

// netnsInode is the inode of the netns at path, 0 when it cannot be read.
func netnsInode(path string) uint64 {
	var st syscall.Stat_t
	if path == "" || syscall.Stat(path, &st) != nil {
		return 0
	}
	return st.Ino
}

// sameNetns reports whether path still names the netns recorded with
// inode (when one was recorded) and is not the plugin's own netns: a
// stored path must not lead link removal into another namespace.
func sameNetns(path string, inode uint64) bool {
	cur := netnsInode(path)
	if cur == 0 || cur == netnsInode("/proc/self/ns/net") {
		return false
	}
	return inode == 0 || cur == inode
}
