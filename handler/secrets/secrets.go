// Package secrets encrypts tenant secrets at rest (ACS connection strings,
// event-subscription secrets): AES-256-GCM under SECRETS_KEY, each sealed
// value naming the key that sealed it, so that the key can be rotated
// (SECRETS_KEY_PREVIOUS still opens what the old key sealed) without losing
// a value.
//
// A sealed value reads "sb1:<key id>:<base64 of nonce and ciphertext>". The
// key id is the first 8 bytes of the key's SHA-256, in hex: it identifies a
// key without revealing it, and needs no version setting beside the key. The
// caller passes additional data (the tenant and the field, say) that is
// authenticated but not stored, so a value copied to another tenant's row or
// another field does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// prefix marks a sealed value; a stored value without it was written before
// secrets were encrypted and is read as plain text (and re-sealed by the
// caller on its next write).
const prefix = "sb1:"

// KeyLen is the length of a key: AES-256.
const KeyLen = 32

// Keyring seals under its current key and opens under the current or the
// previous one. The zero value is not usable; build one with New.
type Keyring struct {
	current  key
	previous *key
}

type key struct {
	id   string
	aead cipher.AEAD
}

// New returns a keyring for the current key and, optionally, the previous
// one, each given as the base64 of 32 bytes (the SECRETS_KEY and
// SECRETS_KEY_PREVIOUS settings). Errors name the setting, never its value.
func New(current, previous string) (*Keyring, error) {
	cur, err := parseKey("SECRETS_KEY", current)
	if err != nil {
		return nil, err
	}
	k := &Keyring{current: cur}
	if strings.TrimSpace(previous) != "" {
		prev, err := parseKey("SECRETS_KEY_PREVIOUS", previous)
		if err != nil {
			return nil, err
		}
		if prev.id != cur.id {
			k.previous = &prev
		}
	}
	return k, nil
}

// GenerateKey returns a new random key in the form New takes.
func GenerateKey() string {
	b := make([]byte, KeyLen)
	if _, err := rand.Read(b); err != nil {
		panic("secrets: no randomness: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

func parseKey(setting, s string) (key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return key{}, fmt.Errorf("%s is not set: it must be the base64 of %d random bytes", setting, KeyLen)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return key{}, fmt.Errorf("%s is not valid base64: it must be the base64 of %d random bytes", setting, KeyLen)
		}
	}
	if len(raw) != KeyLen {
		return key{}, fmt.Errorf("%s decodes to %d bytes: it must be the base64 of %d random bytes", setting, len(raw), KeyLen)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, fmt.Errorf("%s: %w", setting, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, fmt.Errorf("%s: %w", setting, err)
	}
	sum := sha256.Sum256(raw)
	return key{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// KeyID returns the id of the current key, as it appears in sealed values.
func (k *Keyring) KeyID() string { return k.current.id }

// Seal encrypts plaintext under the current key, binding it to aad. The
// empty string stays empty: "no secret" needs no ciphertext.
func (k *Keyring) Seal(plaintext, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, k.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: no randomness: %w", err)
	}
	sealed := k.current.aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return prefix + k.current.id + ":" + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// ErrUnknownKey is returned by Open for a value sealed under a key that is
// neither the current nor the previous one.
var ErrUnknownKey = errors.New("secrets: the value was sealed under a key that is neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS")

// ErrCorrupt is returned by Open for a sealed value that does not
// authenticate: altered, truncated, or opened with other additional data.
var ErrCorrupt = errors.New("secrets: the sealed value does not authenticate (altered, or stored for another tenant or field)")

// Open decrypts a stored value. reseal reports whether the caller should
// seal it again under the current key: it was sealed under the previous
// key, or stored in plain text before encryption existed. The empty string
// opens to itself.
func (k *Keyring) Open(stored, aad string) (plaintext string, reseal bool, err error) {
	if stored == "" {
		return "", false, nil
	}
	if !strings.HasPrefix(stored, prefix) {
		return stored, true, nil
	}
	id, body, ok := strings.Cut(stored[len(prefix):], ":")
	if !ok {
		return "", false, ErrCorrupt
	}
	var kk *key
	switch {
	case id == k.current.id:
		kk = &k.current
	case k.previous != nil && id == k.previous.id:
		kk, reseal = k.previous, true
	default:
		return "", false, ErrUnknownKey
	}
	raw, err := base64.RawStdEncoding.DecodeString(body)
	n := kk.aead.NonceSize()
	if err != nil || len(raw) < n+kk.aead.Overhead() {
		return "", false, ErrCorrupt
	}
	pt, err := kk.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", false, ErrCorrupt
	}
	return string(pt), reseal, nil
}

// Sealed reports whether a stored value is sealed (rather than plain text
// from before encryption, or empty).
func Sealed(stored string) bool { return strings.HasPrefix(stored, prefix) }

// NeedsReseal reports, without decrypting, whether a stored value should be
// sealed again under the current key: plain text from before encryption,
// or sealed under another key. The empty string needs nothing.
func (k *Keyring) NeedsReseal(stored string) bool {
	if stored == "" {
		return false
	}
	if !Sealed(stored) {
		return true
	}
	id, _, _ := strings.Cut(stored[len(prefix):], ":")
	return id != k.current.id
}

// Ephemeral returns a keyring under a new random key: what it seals opens
// only in this process (tests, and runs that keep nothing).
func Ephemeral() *Keyring {
	k, err := New(GenerateKey(), "")
	if err != nil {
		panic("secrets: a generated key is refused: " + err.Error())
	}
	return k
}
