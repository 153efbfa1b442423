package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"SAS token", `Get "https://acct.table.core.windows.net/Tables?sv=2022&sig=abc%3D": dial tcp`, `Get "https://acct.table.core.windows.net/Tables?<redacted>": dial tcp`},
		{"function key", "next https://app.example/api/x?code=key123&page=2.", "next https://app.example/api/x?<redacted>."},
		{"userinfo", "amqps://user:p4ss@ns.servicebus.windows.net:5671/q failed", "amqps://ns.servicebus.windows.net:5671/q?<redacted> failed"},
		{"fragment", "see http://127.0.0.1:1/a#token=x", "see http://127.0.0.1:1/a?<redacted>"},
		{"two URLs", "http://a.example/?k=1 then http://b.example/p?s=2", "http://a.example/?<redacted> then http://b.example/p?<redacted>"},
		{"plain URL unchanged", "Post \"http://127.0.0.1:10002/devstoreaccount1/Tables\": refused", "Post \"http://127.0.0.1:10002/devstoreaccount1/Tables\": refused"},
		{"no URL", "connection refused", "connection refused"},
		{"unparseable", "http://ho%zzst/?sig=1", "http://ho%zzst/?<redacted>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RedactURLs(tt.in)
			for _, secret := range []string{"sig=", "code=", "p4ss", "token=", "k=1", "s=2"} {
				if strings.Contains(got, secret) {
					t.Errorf("RedactURLs(%q) = %q, still holds %q", tt.in, got, secret)
				}
			}
			if tt.name != "unparseable" && got != tt.want {
				t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A wrapped SDK error is redacted in Error and ErrorMessage, whichever
// adapter forgot to, and errors.Is still sees through Redact.
func TestWrappedErrorTextIsRedacted(t *testing.T) {
	sdk := fmt.Errorf(`Get "https://acct.table.core.windows.net/?sig=secret": %w`, context.DeadlineExceeded)
	err := Wrap(EUNAVAILABLE, "store.Get", sdk)
	for _, text := range []string{err.Error(), ErrorMessage(err), Redact(sdk).Error()} {
		if strings.Contains(text, "secret") {
			t.Errorf("text %q holds the SAS signature", text)
		}
	}
	if !errors.Is(Redact(sdk), context.DeadlineExceeded) {
		t.Error("Redact hides context.DeadlineExceeded from errors.Is")
	}
}
