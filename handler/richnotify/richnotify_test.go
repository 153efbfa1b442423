package richnotify

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

func loadVector(t *testing.T) (*Certificate, Content, []byte) {
	t.Helper()
	pemBytes, err := os.ReadFile("testdata/bundle.pem")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertificate(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var c Content
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/resource.json")
	if err != nil {
		t.Fatal(err)
	}
	return cert, c, want
}

// The vector was made with openssl, independently of this package:
// openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt
// rsa_oaep_md:sha1 (the data key), openssl enc -aes-256-cbc with the key
// and its first 16 bytes as IV (the data), openssl dgst -sha256 -mac HMAC
// (the signature): the cipher suites Graph documents.
func TestDecryptOpenSSLVector(t *testing.T) {
	cert, c, want := loadVector(t)
	got, err := cert.Decrypt(c)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %s, want %s", got, want)
	}
	if cert.Thumbprint() != "CF8087C2AD85E9F2BE796CDECFD5CCDDDB78D18B" {
		t.Fatalf("thumbprint %s, want openssl's CF8087C2AD85E9F2BE796CDECFD5CCDDDB78D18B", cert.Thumbprint())
	}
}

// graphEncrypt encrypts as Graph does, written out here with the
// primitives rather than through Encrypt.
func graphEncrypt(t *testing.T, cert *Certificate, key, plain []byte) Content {
	t.Helper()
	wrapped, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &cert.key.PublicKey, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 16 - len(plain)%16
	padded := append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(n)}, n)...)
	block, _ := aes.NewCipher(key)
	data := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(data, padded)
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	return Content{Data: base64.StdEncoding.EncodeToString(data), DataSignature: base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		DataKey: base64.StdEncoding.EncodeToString(wrapped), EncryptionCertificateID: cert.ID(), EncryptionCertificateThumbprint: cert.Thumbprint()}
}

func TestDecryptRejects(t *testing.T) {
	cert, good, _ := loadVector(t)
	other, err := GenerateCertificate("other")
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := ParseCertificate(other)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	flip := func(s string, i int) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[i%len(b)] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	// Correctly signed data that is not PKCS7: only a broken sender makes it.
	badPad := func() Content {
		c := graphEncrypt(t, cert, key, []byte("0123456789abcdef"))
		data, _ := base64.StdEncoding.DecodeString(c.Data)
		data = data[:16] // the padding block cut off
		mac := hmac.New(sha256.New, key)
		mac.Write(data)
		c.Data, c.DataSignature = base64.StdEncoding.EncodeToString(data), base64.StdEncoding.EncodeToString(mac.Sum(nil))
		return c
	}()
	cases := []struct {
		name string
		mod  func(Content) Content
		want error
	}{
		{"tampered data", func(c Content) Content { c.Data = flip(c.Data, 20); return c }, ErrSignature},
		{"tampered signature", func(c Content) Content { c.DataSignature = flip(c.DataSignature, 3); return c }, ErrSignature},
		{"missing signature", func(c Content) Content { c.DataSignature = ""; return c }, ErrSignature},
		{"data not base64", func(c Content) Content { c.Data = "%%%"; return c }, ErrSignature},
		{"tampered key", func(c Content) Content { c.DataKey = flip(c.DataKey, 10); return c }, ErrKey},
		{"key not base64", func(c Content) Content { c.DataKey = "!"; return c }, ErrKey},
		{"other certificate id", func(c Content) Content { c.EncryptionCertificateID = otherCert.ID(); return c }, ErrCertificate},
		{"encrypted for another certificate", func(c Content) Content {
			e, _ := Encrypt(otherCert.X509(), cert.ID(), []byte(`{}`))
			e.EncryptionCertificateThumbprint = ""
			return e
		}, ErrKey},
		{"bad padding under a valid signature", func(Content) Content { return badPad }, ErrData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cert.Decrypt(tc.mod(good))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("got data %q with an error", got)
			}
		})
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	pemBytes, err := GenerateCertificate("round trip")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertificate(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 15, 16, 17, 1000} {
		plain := bytes.Repeat([]byte{'x'}, n)
		c, err := Encrypt(cert.X509(), cert.ID(), plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cert.Decrypt(c)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: got %q, %v", n, got, err)
		}
	}
	// And the hand-written Graph encryption decrypts too.
	got, err := cert.Decrypt(graphEncrypt(t, cert, bytes.Repeat([]byte{9}, 32), []byte(`{"id":"x"}`)))
	if err != nil || string(got) != `{"id":"x"}` {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestParseCertificateRefuses(t *testing.T) {
	pemBytes, _ := os.ReadFile("testdata/bundle.pem")
	certOnly, _, _ := bytes.Cut(pemBytes, []byte("-----BEGIN PRIVATE KEY"))
	other, _ := GenerateCertificate("other")
	_, otherKey, _ := bytes.Cut(other, []byte("-----END CERTIFICATE-----\n"))
	cases := map[string][]byte{
		"empty":          nil,
		"no key":         certOnly,
		"no certificate": otherKey,
		"key of another": append(append([]byte{}, certOnly...), otherKey...),
	}
	for name, in := range cases {
		if _, err := ParseCertificate(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
