package acstest_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/dev/acstest"
)

// The fake validates bodies as the Identity API does: the documented field
// createTokenWithScopes issues a token, and anything else (the check's old
// createTokenFor among them) is a 400, not silently ignored.
func TestFakeRefusesUnknownFields(t *testing.T) {
	s := acstest.NewServer(t)
	tests := []struct {
		name string
		body string
		want int
	}{
		{"documented field", `{"createTokenWithScopes":["voip"]}`, http.StatusCreated},
		{"with expiry", `{"createTokenWithScopes":["chat"],"expiresInMinutes":60}`, http.StatusCreated},
		{"identity only", `{}`, http.StatusCreated},
		{"unknown field", `{"createTokenFor":["voip"]}`, http.StatusBadRequest},
		{"unknown scope", `{"createTokenWithScopes":["admin"]}`, http.StatusBadRequest},
		{"not JSON", `createTokenWithScopes=voip`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL+"/identities?api-version="+acs.APIVersion, bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			acs.Sign(req, []byte(tt.body), s.Key, time.Now())
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
