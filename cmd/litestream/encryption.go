package main

// Client-side age encryption of a replica (issue 13): the replica's `age:`
// section becomes a remote/crypt wrapper around the backend client, in
// openReplica, the one place every command opens a replica through. No
// code path gets the bare backend of a replica that has an age section, so
// nothing can upload plaintext to it (docs: remote/crypt package doc).

import (
	"errors"
	"fmt"

	"filippo.io/age"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/crypt"
)

// envAgeIdentityFile names an age identity file for a replica given by URL
// (restore, ltx and the VFS extension), where there is no config file.
const envAgeIdentityFile = "LITESTREAM_AGE_IDENTITY_FILE"

// ageKeys are a replica's parsed age keys. Identities are secrets: never
// print them (their String method returns the key).
type ageKeys struct {
	recipients []age.Recipient
	identities []age.Identity
}

// parseAge parses an `age:` section (nil when it is empty). Errors name the
// key ("age.recipients", "age.identities") and never quote a secret key.
func parseAge(a AgeConfig) (*ageKeys, error) {
	if len(a.Recipients) == 0 && len(a.Identities) == 0 {
		return nil, nil
	}
	k := &ageKeys{}
	var err error
	if k.recipients, err = crypt.ParseRecipients(a.Recipients); err != nil {
		return nil, fmt.Errorf("age.recipients: %w", err)
	}
	for _, p := range a.Identities {
		p, err := expandPath(p)
		if err != nil {
			return nil, fmt.Errorf("age.identities: %w", err)
		}
		ids, err := crypt.ReadIdentityFile(p)
		if err != nil {
			return nil, fmt.Errorf("age.identities: %w", err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("age.identities: %s holds no age identity", p)
		}
		k.identities = append(k.identities, ids...)
	}
	// Checks that the recipients can be used together and fit the header.
	if len(k.recipients) > 0 {
		if _, err := crypt.New(nopClient{}, crypt.Options{Recipients: k.recipients}); err != nil {
			return nil, fmt.Errorf("age.recipients: %w", err)
		}
	}
	return k, nil
}

// ageFromEnv reads the identity file LITESTREAM_AGE_IDENTITY_FILE names
// (nil when it is unset), for a replica given by URL.
func ageFromEnv(getenv func(string) string) (*ageKeys, error) {
	p := getenv(envAgeIdentityFile)
	if p == "" {
		return nil, nil
	}
	ids, err := crypt.ReadIdentityFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envAgeIdentityFile, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: %s holds no age identity", envAgeIdentityFile, p)
	}
	return &ageKeys{identities: ids}, nil
}

// wrap returns c encrypted with the keys (c itself when k is nil).
func (k *ageKeys) wrap(c remote.Client) (remote.Client, error) {
	if k == nil {
		return c, nil
	}
	return crypt.New(c, crypt.Options{Recipients: k.recipients, Identities: k.identities})
}

// checkReplicate refuses an age section the daemon cannot honour: it
// writes (recipients) and reads the replica back to compact, resume after a
// restart and copy snapshots (identities).
func (k *ageKeys) checkReplicate() error {
	if k == nil {
		return nil
	}
	if len(k.recipients) == 0 {
		return errors.New("age.recipients: replicate encrypts to recipients, and none are configured")
	}
	if len(k.identities) == 0 {
		return errors.New("age.identities: replicate needs an identity too: compaction, resuming after a restart and snapshots read the encrypted replica back")
	}
	return nil
}

// nopClient is a client that is never called: crypt.New checks its
// recipients against it.
type nopClient struct{ remote.Client }

func (nopClient) Type() string { return "none" }
