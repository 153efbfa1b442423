// Package richnotify decrypts the resource data of Microsoft Graph change
// notifications ("rich notifications") exactly as Graph documents them,
// and encrypts it the same way for the Graph simulator and tests:
//
//   - dataKey: a random 32-byte symmetric key, encrypted with the public
//     key of the subscription's certificate (RSA/ECB/OAEPWithSHA1AndMGF1Padding);
//   - dataSignature: HMAC-SHA256 of the encrypted data under the
//     symmetric key, checked before anything in the data is trusted;
//   - data: AES-256-CBC with PKCS7 padding, the IV being the key's first
//     16 bytes.
//
// It knows nothing of presence: it turns an encryptedContent object into
// the resource's JSON, or says which check failed.
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
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Content is a notification's encryptedContent.
type Content struct {
	Data                            string `json:"data"`
	DataSignature                   string `json:"dataSignature"`
	DataKey                         string `json:"dataKey"`
	EncryptionCertificateID         string `json:"encryptionCertificateId"`
	EncryptionCertificateThumbprint string `json:"encryptionCertificateThumbprint"`
}

// Failure kinds, for errors.Is: callers count them apart.
var (
	// ErrCertificate: the content names another certificate than ours.
	ErrCertificate = errors.New("richnotify: encrypted for another certificate")
	// ErrKey: dataKey is not base64 or does not unwrap with our private key.
	ErrKey = errors.New("richnotify: the data key does not decrypt")
	// ErrSignature: dataSignature is missing or does not match the data.
	ErrSignature = errors.New("richnotify: the data signature does not match")
	// ErrData: the signed data is not valid AES-256-CBC/PKCS7 (cannot
	// happen for data Graph signed, unless our key is wrong).
	ErrData = errors.New("richnotify: the data does not decrypt")
)

// Certificate is the subscriber's certificate with its private key.
type Certificate struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
	// thumbprint is the SHA-1 of the DER certificate, upper-case hex, as
	// Graph reports encryptionCertificateThumbprint.
	thumbprint string
}

// ParseCertificate reads a PEM bundle holding an X.509 certificate with an
// RSA public key and its private key (PKCS #1 or PKCS #8; the form Key
// Vault and openssl export). Returns an error naming what is missing.
func ParseCertificate(pemBytes []byte) (*Certificate, error) {
	var c Certificate
	rest := pemBytes
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if c.cert != nil {
				continue // the chain: the leaf comes first
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("richnotify: certificate: %w", err)
			}
			c.cert = cert
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("richnotify: private key: %w", err)
			}
			c.key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("richnotify: private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, errors.New("richnotify: the private key is not an RSA key (Graph encrypts the data key with RSA-OAEP)")
			}
			c.key = rk
		}
	}
	if c.cert == nil {
		return nil, errors.New("richnotify: no CERTIFICATE block in the PEM")
	}
	if c.key == nil {
		return nil, errors.New("richnotify: no private key (RSA PRIVATE KEY or PRIVATE KEY block) in the PEM")
	}
	pub, ok := c.cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("richnotify: the certificate's key is not RSA")
	}
	if !pub.Equal(&c.key.PublicKey) {
		return nil, errors.New("richnotify: the private key does not belong to the certificate")
	}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("richnotify: the RSA key has %d bits; at least 2048 are needed", pub.N.BitLen())
	}
	sum := sha1.Sum(c.cert.Raw)
	c.thumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
	return &c, nil
}

// ID is the certificate's identifier in subscriptions
// (encryptionCertificateId): its thumbprint.
func (c *Certificate) ID() string { return c.thumbprint }

// Thumbprint is the SHA-1 thumbprint, upper-case hex.
func (c *Certificate) Thumbprint() string { return c.thumbprint }

// PublicBase64 is the DER certificate in base64, as a subscription's
// encryptionCertificate.
func (c *Certificate) PublicBase64() string { return base64.StdEncoding.EncodeToString(c.cert.Raw) }

// X509 returns the certificate.
func (c *Certificate) X509() *x509.Certificate { return c.cert }

// Decrypt returns the resource JSON of content. The data key is unwrapped
// first (the signature is keyed with it), then the signature is checked in
// constant time, and only then is the data decrypted. Every failure wraps
// one of the Err* kinds and says nothing of the data.
func (c *Certificate) Decrypt(content Content) ([]byte, error) {
	if id := content.EncryptionCertificateID; id != "" && !strings.EqualFold(id, c.thumbprint) {
		return nil, ErrCertificate
	}
	if tp := content.EncryptionCertificateThumbprint; tp != "" && !strings.EqualFold(tp, c.thumbprint) {
		return nil, ErrCertificate
	}
	wrapped, err := base64.StdEncoding.DecodeString(content.DataKey)
	if err != nil || len(wrapped) == 0 {
		return nil, ErrKey
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, c.key, wrapped, nil)
	if err != nil || len(key) != 32 {
		return nil, ErrKey
	}
	data, err := base64.StdEncoding.DecodeString(content.Data)
	if err != nil {
		return nil, ErrSignature // unsigned garbage: nothing to trust
	}
	sig, err := base64.StdEncoding.DecodeString(content.DataSignature)
	if err != nil || len(sig) != sha256.Size {
		return nil, ErrSignature
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	if !hmac.Equal(mac.Sum(nil), sig) {
		return nil, ErrSignature
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, ErrData
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrData
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, key[:aes.BlockSize]).CryptBlocks(plain, data)
	n := int(plain[len(plain)-1])
	if n == 0 || n > aes.BlockSize || !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, ErrData
	}
	return plain[:len(plain)-n], nil
}

// Encrypt encrypts resource JSON for the holder of cert as Graph does (a
// fresh symmetric key per notification). The simulator and tests use it.
func Encrypt(cert *x509.Certificate, certID string, resource []byte) (Content, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return Content{}, errors.New("richnotify: the certificate's key is not RSA")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return Content{}, err
	}
	wrapped, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key, nil)
	if err != nil {
		return Content{}, err
	}
	n := aes.BlockSize - len(resource)%aes.BlockSize
	padded := append(append([]byte{}, resource...), bytes.Repeat([]byte{byte(n)}, n)...)
	block, err := aes.NewCipher(key)
	if err != nil {
		return Content{}, err
	}
	data := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, key[:aes.BlockSize]).CryptBlocks(data, padded)
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	sum := sha1.Sum(cert.Raw)
	return Content{
		Data:                            base64.StdEncoding.EncodeToString(data),
		DataSignature:                   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		DataKey:                         base64.StdEncoding.EncodeToString(wrapped),
		EncryptionCertificateID:         certID,
		EncryptionCertificateThumbprint: strings.ToUpper(hex.EncodeToString(sum[:])),
	}, nil
}

// GenerateCertificate returns a self-signed PEM certificate and RSA key
// for rich notifications (the local demo and tests; in Azure the
// certificate comes from Key Vault).
func GenerateCertificate(commonName string) ([]byte, error) {
	return generate(commonName)
}
