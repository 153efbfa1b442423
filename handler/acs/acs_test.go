package acs_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/dev/acstest"
	"switchboard/handler/switchboard"
)

const testKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==" // "secret-key-for-tests-only"

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		wantEndpoint string
		wantErr      string // substring of the message; "" for success
	}{
		{name: "documented form", in: "endpoint=https://contoso.communication.azure.com/;accesskey=" + testKey, wantEndpoint: "https://contoso.communication.azure.com/"},
		{name: "any case, any order, no slash, trailing semicolon", in: " AccessKey=" + testKey + "; Endpoint=https://Contoso.Communication.Azure.com ;", wantEndpoint: "https://contoso.communication.azure.com/"},
		{name: "port kept", in: "endpoint=https://127.0.0.1:8443/;accesskey=" + testKey, wantEndpoint: "https://127.0.0.1:8443/"},
		{name: "http kept (refused later by CheckEndpoint)", in: "endpoint=http://127.0.0.1:8080;accesskey=" + testKey, wantEndpoint: "http://127.0.0.1:8080/"},
		{name: "empty", in: "  ", wantErr: "empty"},
		{name: "no endpoint", in: "accesskey=" + testKey, wantErr: "endpoint is missing"},
		{name: "no key", in: "endpoint=https://contoso.communication.azure.com/", wantErr: "accesskey is missing"},
		{name: "empty key", in: "endpoint=https://contoso.communication.azure.com/;accesskey=", wantErr: "accesskey is missing"},
		{name: "key not base64", in: "endpoint=https://contoso.communication.azure.com/;accesskey=not*base64", wantErr: "not base64"},
		{name: "ftp endpoint", in: "endpoint=ftp://contoso.communication.azure.com/;accesskey=" + testKey, wantErr: "https"},
		{name: "relative endpoint", in: "endpoint=contoso;accesskey=" + testKey, wantErr: "absolute URL"},
		{name: "endpoint with path", in: "endpoint=https://contoso.communication.azure.com/identities;accesskey=" + testKey, wantErr: "without a path"},
		{name: "twice", in: "endpoint=https://a.communication.azure.com/;endpoint=https://b.communication.azure.com/;accesskey=" + testKey, wantErr: "twice"},
		{name: "storage string", in: "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + testKey, wantErr: `"DefaultEndpointsProtocol", a part of another kind`},
		{name: "segment without =", in: "endpoint=https://contoso.communication.azure.com/;" + strings.TrimSuffix(testKey, "=="), wantErr: "not name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := acs.ParseConnectionString(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConnectionString: %v", err)
				}
				if got, want := cs.Endpoint, tt.wantEndpoint; got != want {
					t.Errorf("Endpoint = %q, want %q", got, want)
				}
				if got, want := string(cs.AccessKey), "secret-key-for-tests-only"; got != want {
					t.Errorf("AccessKey = %q, want %q", got, want)
				}
				return
			}
			if got, want := switchboard.ErrorCode(err), switchboard.EINVALID; got != want {
				t.Fatalf("code = %q (%v), want %q", got, err, want)
			}
			if got, want := switchboard.ErrorField(err), "connectionString"; got != want {
				t.Errorf("field = %q, want %q", got, want)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimRight(testKey, "=")[:12]) {
				t.Errorf("error %q repeats the access key", err)
			}
		})
	}
}

// A key whose base64 holds "=" splits into name=value pieces: neither
// piece may come back in the parser's error.
func TestParseConnectionStringNeverEchoesAKeyPiece(t *testing.T) {
	for _, in := range []string{
		"endpoint=https://contoso.communication.azure.com/;accesskey=" + testKey + ";QWxhZGRpbjpvcGVuIHNlc2FtZQ=x",
		"endpoint=https://contoso.communication.azure.com/;QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
		"endpoint=https://contoso.communication.azure.com/;Zm9vYmFy=;accesskey=" + testKey,
	} {
		_, err := acs.ParseConnectionString(in)
		if err == nil {
			t.Fatalf("ParseConnectionString(%q) = nil, want an error", in)
		}
		for _, piece := range []string{"QWxhZGRpbjpvcGVu", "Zm9vYmFy"} {
			if strings.Contains(err.Error(), piece) {
				t.Errorf("error %q repeats %q from the input", err, piece)
			}
		}
	}
}

func TestConnectionStringNeverPrintsTheKey(t *testing.T) {
	cs, err := acs.ParseConnectionString("endpoint=https://contoso.communication.azure.com/;accesskey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(cs), fmt.Sprintf("%v %+v %#v %s", cs, cs, cs, cs)} {
		if strings.Contains(s, "secret-key") || strings.Contains(s, testKey) {
			t.Errorf("printed connection string shows the key: %s", s)
		}
	}
}

// The signature is compared with one computed independently (Python's
// hmac module) from the string to sign ACS documents.
func TestSignKnownAnswer(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(testKey)
	body := []byte(`{"createTokenFor":["voip"]}`)
	req := httptest.NewRequest(http.MethodPost, "https://contoso.communication.azure.com/identities?api-version=2023-10-01", nil)
	req.Host = ""
	now := time.Date(2026, 11, 20, 13, 0, 0, 0, time.FixedZone("CET", 3600)) // 12:00 GMT
	acs.Sign(req, body, key, now)
	for name, want := range map[string]string{
		"x-ms-date":           "Fri, 20 Nov 2026 12:00:00 GMT",
		"x-ms-content-sha256": "G3tuM0uMUHQYNoSzjRdfePLMwR2OSsPr0Bg1UqnTf9o=",
		"Authorization":       "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=e88mKnRqrhdV/jVBsrO5dx5FjmSBvPTypREoILbQVd0=",
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func newClient(s *acstest.Server) *acs.Client {
	return acs.New(acs.Options{AllowPrivate: true, RootCAs: s.CertPool()})
}

func TestCheckAgainstFake(t *testing.T) {
	ctx := context.Background()
	t.Run("right key creates and removes an identity", func(t *testing.T) {
		s := acstest.NewServer(t)
		if err := newClient(s).Check(ctx, s.ConnectionString()); err != nil {
			t.Fatalf("Check: %v", err)
		}
		created, live, refused := s.Counts()
		if created != 1 || live != 0 || refused != 0 {
			t.Errorf("created, live, refused = %d, %d, %d; want 1, 0, 0", created, live, refused)
		}
	})
	t.Run("wrong key is refused", func(t *testing.T) {
		s := acstest.NewServer(t)
		wrong := []byte("another-key-of-another-resource!")
		err := newClient(s).Check(ctx, s.ConnectionStringWithKey(wrong))
		if got, want := switchboard.ErrorCode(err), switchboard.EUNAUTHORIZED; got != want {
			t.Fatalf("code = %q (%v), want %q", got, err, want)
		}
		if got, want := switchboard.ErrorType(err), acs.TypeKeyRefused; got != want {
			t.Errorf("type = %q, want %q", got, want)
		}
		if !strings.Contains(err.Error(), "refused the access key") {
			t.Errorf("error %q does not say the key was refused", err)
		}
		if _, _, refused := s.Counts(); refused != 1 {
			t.Errorf("fake refused %d requests, want 1", refused)
		}
		if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(wrong)) {
			t.Errorf("error %q holds the key", err)
		}
	})
	statusCases := []struct {
		name     string
		status   int
		wantCode string
		wantType string
	}{
		{"forbidden", http.StatusForbidden, switchboard.EFORBIDDEN, acs.TypeInsufficientRights},
		{"server error", http.StatusInternalServerError, switchboard.EUNAVAILABLE, acs.TypeUnreachable},
		{"throttled", http.StatusTooManyRequests, switchboard.EUNAVAILABLE, acs.TypeUnreachable},
		{"not found", http.StatusNotFound, switchboard.EINVALID, acs.TypeNotACS},
	}
	for _, tt := range statusCases {
		t.Run(tt.name, func(t *testing.T) {
			s := acstest.NewServer(t)
			s.AnswerStatus(tt.status)
			err := newClient(s).Check(ctx, s.ConnectionString())
			if got := switchboard.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.wantCode)
			}
			if got := switchboard.ErrorType(err); got != tt.wantType {
				t.Errorf("type = %q, want %q", got, tt.wantType)
			}
		})
	}
	t.Run("unreachable endpoint", func(t *testing.T) {
		s := acstest.NewServer(t)
		cs := s.ConnectionString()
		s.Close()
		err := newClient(s).Check(ctx, cs)
		if got, want := switchboard.ErrorCode(err), switchboard.EUNAVAILABLE; got != want {
			t.Fatalf("code = %q (%v), want %q", got, err, want)
		}
		if !strings.Contains(err.Error(), "could not be reached") {
			t.Errorf("error %q does not say the endpoint is unreachable", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		s := acstest.NewServer(t)
		err := acs.New(acs.Options{AllowPrivate: true}).Check(ctx, s.ConnectionString())
		if got, want := switchboard.ErrorCode(err), switchboard.EUNAVAILABLE; got != want {
			t.Fatalf("code = %q (%v), want %q", got, err, want)
		}
	})
	t.Run("not ACS at all", func(t *testing.T) {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("<html>hello</html>"))
		}))
		defer s.Close()
		pool := x509.NewCertPool()
		pool.AddCert(s.Certificate())
		err := acs.New(acs.Options{AllowPrivate: true, RootCAs: pool}).Check(ctx, "endpoint="+s.URL+"/;accesskey="+testKey)
		if got, want := switchboard.ErrorType(err), acs.TypeUnexpected; got != want {
			t.Fatalf("type = %q (%v), want %q", got, err, want)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		err := acs.New(acs.Options{}).Check(ctx, "endpoint=https://x.communication.azure.com/")
		if got, want := switchboard.ErrorField(err), "connectionString"; got != want || !switchboard.IsCode(err, switchboard.EINVALID) {
			t.Fatalf("err = %v (field %q), want EINVALID on %q", err, got, want)
		}
	})
}

// A clock far off makes the fake refuse the date, as ACS does.
func TestCheckWithSkewedClockIsRefused(t *testing.T) {
	s := acstest.NewServer(t)
	c := acs.New(acs.Options{AllowPrivate: true, RootCAs: s.CertPool(), Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err := c.Check(context.Background(), s.ConnectionString()); !switchboard.IsCode(err, switchboard.EUNAUTHORIZED) {
		t.Fatalf("Check = %v, want EUNAUTHORIZED", err)
	}
}
