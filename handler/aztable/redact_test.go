package aztable_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"switchboard/handler/aztable"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// A SAS connection string puts its signature in every request's query
// string, and the SDK's transport errors quote the request URL: none of it
// may reach an error's text, the API's problem title or a log line.
func TestSASTokenNeverInErrors(t *testing.T) {
	const sig = "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw%3D%3D"
	sas := "sv=2022-11-02&ss=t&srt=sco&sp=rwdlacu&se=2099-01-01T00:00:00Z&sig=" + sig
	// Nothing listens on the port: every request fails in the transport.
	cs := fmt.Sprintf("TableEndpoint=http://127.0.0.1:%d/devstoreaccount1;SharedAccessSignature=%s", testenv.FreePort(t), sas)
	tables, err := aztable.Open(aztable.Options{ConnectionString: cs})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, tableErr := tables.Table(ctx, "Probe")
	errs := map[string]error{"Ping": tables.Ping(ctx), "Table": tableErr}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	for name, err := range errs {
		if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
			t.Errorf("%s: code %q (%v), want %q", name, switchboard.ErrorCode(err), err, switchboard.EUNAVAILABLE)
		}
		log.Error("storage failed", "op", name, "err", err)
		for _, text := range []string{err.Error(), switchboard.ErrorMessage(err), fmt.Sprintf("%v %+v", err, err)} {
			if strings.Contains(text, "sig=") || strings.Contains(text, sig) || strings.Contains(text, "se=2099") {
				t.Errorf("%s: error text holds the SAS token: %s", name, text)
			}
		}
	}
	if strings.Contains(logs.String(), sig) || strings.Contains(logs.String(), "sig=") {
		t.Errorf("the log holds the SAS token:\n%s", logs.String())
	}
	var _ store.Tables = tables
}
