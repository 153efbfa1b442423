package settings

import (
	"context"

	"switchboard/handler/secrets/reseal"
	"switchboard/handler/store"
)

// ResealReport is what one sweep of ResealSecrets did.
type ResealReport = reseal.Report

// secretColumns are the sealed properties of a settings row.
var secretColumns = func() []reseal.Column {
	cols := make([]reseal.Column, 0, len(secretFields))
	for _, f := range secretFields {
		cols = append(cols, reseal.Column{Prop: f.prop, AAD: func(e store.Entity) string { return secretAAD(e.PartitionKey, f.field) }})
	}
	return cols
}()

// ResealSecrets is the Housekeeping job that seals every tenant secret
// under the current key: values stored in plain text (before encryption)
// or sealed under SECRETS_KEY_PREVIOUS, so that the previous key can be
// retired once a sweep finds none left. A row is rewritten with its own
// ETag and keeps its public ETag (the settings did not change); a row
// written meanwhile is skipped, as its writer sealed it. A row whose secret
// cannot be opened is left as stored and counted. stop is asked between
// pages; the sweep resumes from the start next time.
func (s *Service) ResealSecrets(ctx context.Context, stop func() bool) (ResealReport, error) {
	return reseal.Sweep{
		Name: "settings", Table: s.table, Keyring: s.o.Secrets, Columns: secretColumns, Log: s.o.Log,
		Match: func(e store.Entity) bool { return e.RowKey == rowKey },
	}.Run(ctx, stop)
}
