package secrets

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func mustNew(t *testing.T, cur, prev string) *Keyring {
	t.Helper()
	k, err := New(cur, prev)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustNew(t, GenerateKey(), "")
	const secret = "endpoint=https://x.communication.azure.com/;accesskey=c2VjcmV0"
	sealed, err := k.Seal(secret, "tenant-1|interact.acsConnectionString")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "accesskey") || strings.Contains(sealed, "c2VjcmV0") {
		t.Fatalf("sealed value shows the plain text: %s", sealed)
	}
	if !Sealed(sealed) || !strings.HasPrefix(sealed, "sb1:"+k.KeyID()+":") {
		t.Fatalf("sealed value %q does not name the key %s", sealed, k.KeyID())
	}
	got, reseal, err := k.Open(sealed, "tenant-1|interact.acsConnectionString")
	if err != nil || got != secret || reseal {
		t.Fatalf("Open = %q, %v, %v; want the secret, false, nil", got, reseal, err)
	}
	again, _ := k.Seal(secret, "tenant-1|interact.acsConnectionString")
	if again == sealed {
		t.Fatal("two seals of the same value are equal: the nonce is not random")
	}
}

func TestOpenRefusesAnotherTenantOrField(t *testing.T) {
	k := mustNew(t, GenerateKey(), "")
	sealed, _ := k.Seal("s3cret", "tenant-1|interact.acsConnectionString")
	for _, aad := range []string{"tenant-2|interact.acsConnectionString", "tenant-1|assistant.acsConnectionString", ""} {
		if _, _, err := k.Open(sealed, aad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open with aad %q: err = %v, want ErrCorrupt", aad, err)
		}
	}
}

func TestOpenRefusesTamperedValues(t *testing.T) {
	k := mustNew(t, GenerateKey(), "")
	sealed, _ := k.Seal("s3cret", "a")
	body := sealed[strings.LastIndex(sealed, ":")+1:]
	raw, _ := base64.RawStdEncoding.DecodeString(body)
	raw[len(raw)-1] ^= 1
	flipped := sealed[:strings.LastIndex(sealed, ":")+1] + base64.RawStdEncoding.EncodeToString(raw)
	cases := map[string]string{
		"bit flipped": flipped,
		"truncated":   sealed[:len(sealed)-10],
		"no body":     "sb1:" + k.KeyID(),
		"not base64":  "sb1:" + k.KeyID() + ":***",
	}
	for name, v := range cases {
		if _, _, err := k.Open(v, "a"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	before := mustNew(t, oldKey, "")
	sealed, _ := before.Seal("s3cret", "a")

	rotated := mustNew(t, newKey, oldKey)
	got, reseal, err := rotated.Open(sealed, "a")
	if err != nil || got != "s3cret" || !reseal {
		t.Fatalf("Open under the previous key = %q, %v, %v; want the secret, reseal true", got, reseal, err)
	}
	resealed, _ := rotated.Seal(got, "a")
	if _, reseal, err := rotated.Open(resealed, "a"); err != nil || reseal {
		t.Fatalf("Open after reseal: reseal %v, err %v; want false, nil", reseal, err)
	}

	// Once the previous key is dropped, what it sealed cannot be read, and
	// the error says so rather than "corrupt".
	dropped := mustNew(t, newKey, "")
	if _, _, err := dropped.Open(sealed, "a"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open after the previous key was dropped: err = %v, want ErrUnknownKey", err)
	}
}

func TestPlainTextFromBeforeEncryptionIsReadAndResealed(t *testing.T) {
	k := mustNew(t, GenerateKey(), "")
	got, reseal, err := k.Open("endpoint=https://x/;accesskey=abc", "a")
	if err != nil || got != "endpoint=https://x/;accesskey=abc" || !reseal {
		t.Fatalf("Open(plain) = %q, %v, %v; want it as is, reseal true", got, reseal, err)
	}
	if got, reseal, err := k.Open("", "a"); got != "" || reseal || err != nil {
		t.Fatalf("Open(\"\") = %q, %v, %v", got, reseal, err)
	}
	if s, err := k.Seal("", "a"); s != "" || err != nil {
		t.Fatalf("Seal(\"\") = %q, %v; want empty", s, err)
	}
}

func TestNewRefusesBadKeysWithoutEchoingThem(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	cases := []struct {
		name, cur, prev, want string
	}{
		{"missing", "", "", "SECRETS_KEY is not set"},
		{"not base64", "not*base64*at*all", "", "SECRETS_KEY is not valid base64"},
		{"16 bytes", short, "", "SECRETS_KEY decodes to 16 bytes"},
		{"bad previous", GenerateKey(), short, "SECRETS_KEY_PREVIOUS decodes to 16 bytes"},
	}
	for _, c := range cases {
		_, err := New(c.cur, c.prev)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
			continue
		}
		for _, v := range []string{c.cur, c.prev} {
			if v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("%s: the error echoes the key: %v", c.name, err)
			}
		}
	}
	// Unpadded base64 is accepted: operators paste keys from many tools.
	if _, err := New(strings.TrimRight(GenerateKey(), "="), ""); err != nil {
		t.Errorf("unpadded key refused: %v", err)
	}
}

func TestNeedsReseal(t *testing.T) {
	old := mustNew(t, GenerateKey(), "")
	cur := mustNew(t, GenerateKey(), "")
	underOld, _ := old.Seal("s", "aad")
	underCur, _ := cur.Seal("s", "aad")
	for _, tc := range []struct {
		name, stored string
		want         bool
	}{
		{"empty", "", false},
		{"plain text", "endpoint=https://x.communication.azure.com/;accesskey=eA==", true},
		{"another key", underOld, true},
		{"the current key", underCur, false},
	} {
		if got := cur.NeedsReseal(tc.stored); got != tc.want {
			t.Errorf("%s: NeedsReseal = %v, want %v", tc.name, got, tc.want)
		}
	}
}
