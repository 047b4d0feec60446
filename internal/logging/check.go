package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// DuplicateKeys returns the keys that appear more than once in one object of
// the JSON text line (at any depth, as "outer.inner"), for tests and tools
// that check ratchet's logs: encoding/json keeps the last of duplicate keys
// silently.
func DuplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var dups []string
	if err := walkValue(dec, "", &dups); err != nil {
		return nil, fmt.Errorf("log line %.200q: %w", line, err)
	}
	return dups, nil
}

// walkValue reads one JSON value from dec, noting duplicate object keys.
func walkValue(dec *json.Decoder, path string, dups *[]string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			if seen[key] {
				*dups = append(*dups, path+key)
			}
			seen[key] = true
			if err := walkValue(dec, path+key+".", dups); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := walkValue(dec, path, dups); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return err
	}
	return nil
}
