package crypt

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
)

// ParseRecipients parses age public keys: "age1..." (X25519) and
// "age1pq1..." (the ML-KEM-768 + X25519 hybrid, post-quantum). Recipients
// are public, so errors may quote them. Passphrase (scrypt), SSH and plugin
// recipients are not accepted: a daemon cannot ask for a passphrase, and
// the others need programs or formats outside age's native keys.
func ParseRecipients(keys []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, k := range keys {
		k = strings.TrimSpace(k)
		var r age.Recipient
		var err error
		switch {
		case strings.HasPrefix(k, "age1pq1"):
			r, err = age.ParseHybridRecipient(k)
		case strings.HasPrefix(k, "age1"):
			r, err = age.ParseX25519Recipient(k)
		default:
			err = errors.New("not an age public key (age1... or age1pq1...)")
		}
		if err != nil {
			return nil, fmt.Errorf("recipient %d (%.12s...): %w", i+1, k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ReadIdentityFile reads an age identity file: secret keys
// ("AGE-SECRET-KEY-1...", "AGE-SECRET-KEY-PQ-1..."), one per line; empty
// lines and lines starting with "#" are ignored (the format age-keygen
// writes). Errors name the file and a line, never the key material.
func ReadIdentityFile(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("age identity file %s: %w", path, err)
	}
	return ids, nil
}

// ReadIdentityFiles reads several identity files (ReadIdentityFile).
func ReadIdentityFiles(paths []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range paths {
		ids, err := ReadIdentityFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	return out, nil
}
