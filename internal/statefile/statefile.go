// Package statefile writes and reads ratchet's state files (the delegate
// cache, the pairing state, the completer jobs) so that a link planted in
// the state directory is never followed: a file is written as a new temp
// file (O_CREAT|O_EXCL|O_NOFOLLOW, 0600) in a 0700 directory that ratchet's
// user owns and nobody else may write, then renamed over the target
// (rename replaces a link, it does not follow it); files are read with
// O_NOFOLLOW. Every step works on a descriptor of the directory, so the
// directory cannot be swapped for a link between the check and the write.
package statefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrUnsafeDir is matched by the errors about a state directory that is a
// symbolic link, not a directory, not owned by ratchet's user, or writable
// by group or others.
var ErrUnsafeDir = errors.New("unsafe state directory")

// tempAttempts bounds the retries on a temp name that exists already.
const tempAttempts = 8

// WriteFile writes data to dir/name atomically with mode 0600, creating dir
// (mode 0700, and its parents) when it is missing.
func WriteFile(dir, name string, data []byte) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("state file name %q: not a plain file name", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	dfd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	f, tmp, err := createTemp(dfd, name)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	if err := writeAndRename(dfd, f, tmp, name, data); err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// ReadFile reads the state file at path without following a link there
// (a link reads as an error matching unix.ELOOP); a missing file or
// directory gives an error matching os.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	dir, name := filepath.Split(path)
	dfd, err := openDir(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("read %s: not a regular file", path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// openDir opens dir without following a link and checks that it is safe.
func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("state dir %s: a symbolic link or not a directory: %w", dir, ErrUnsafeDir)
		}
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if reason := unsafeDir(st); reason != "" {
		unix.Close(fd)
		return -1, fmt.Errorf("state dir %s: %s: %w", dir, reason, ErrUnsafeDir)
	}
	return fd, nil
}

// unsafeDir says why a directory with these attributes may not hold state.
func unsafeDir(st unix.Stat_t) string {
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Sprintf("owned by uid %d, not %d", st.Uid, uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Sprintf("mode %o lets group or others write", st.Mode&0o7777)
	}
	return ""
}

// createTemp creates a new, empty temp file for name in the directory dfd
// and returns it open for writing, and its name; it never opens an
// existing file or a link.
func createTemp(dfd int, name string) (*os.File, string, error) {
	for range tempAttempts {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, "", err
		}
		tmp := ".tmp-" + name + "-" + hex.EncodeToString(b)
		fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return os.NewFile(uintptr(fd), tmp), tmp, nil
	}
	return nil, "", fmt.Errorf("no free temp name for %s", name)
}

// writeAndRename fills the temp file f and renames it (tmp) over name.
func writeAndRename(dfd int, f *os.File, tmp, name string, data []byte) error {
	if err := f.Chmod(0o600); err != nil { // whatever the umask
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return unix.Renameat(dfd, tmp, dfd, name)
}
