package settings_test

import (
	"strings"
	"testing"

	"switchboard/handler/settings"
	"switchboard/handler/switchboard"
)

// FuzzPatch feeds arbitrary bytes to the patch decoder and applies what it
// accepts to two stored states. It never panics; every refusal is EINVALID
// and never holds the stored access key; every accepted result validates,
// keeps the widget key, and applying the same patch again changes nothing
// (merge patches are idempotent).
func FuzzPatch(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `[]`, `"x"`, `{"outbound":{"maxScheduledTasksPerService":50}}`,
		`{"outbound":{"maxScheduledTasksPerService":20.5}}`, `{"outbound":{"maxScheduledTasksPerService":"20"}}`,
		`{"outbound":{"maxScheduledTasksPerService":1e400}}`, `{"outbound":{"maxScheduledTasksPerService":-0.0}}`,
		`{"interact":{"enabled":true}}`, `{"interact":{"acsConnectionString":null}}`, `{"interact":null}`,
		`{"interact":{"enabled":true,"acsConnectionString":"` + connString() + `"}}`,
		`{"interact":{"authorization":"VerifyToken","sessionRecoveryTimeoutSeconds":5,"o365UserId":null}}`,
		`{"assistant":{"useOwnAcsInstance":false,"acsConnectionString":""}}`,
		`{"attendantConsole":{"contactSearchFilter":"a eq 'b'","teamVisibility":"NoMembers"}}`,
		`{"presenceTracking":{"trackOverGuestAccounts":true,"account1Upn":"x"}}`,
		`{"interact":{"widgetKey":"x"}}`, `{"outbound":{}} trailing`, `{"outbound":{"maxScheduledTasksPerService":1,"maxScheduledTasksPerService":99}}`,
	} {
		f.Add([]byte(seed))
	}
	stored := settings.Defaults()
	stored.Interact.Enabled = true
	stored.Interact.ACSConnectionString = settings.Secret(connString())
	stored.Interact.WidgetKey = "0f3e2d1c-0000-4000-8000-00000000000a"
	if err := settings.Validate(stored); err != nil {
		f.Fatal(err)
	}
	bases := []settings.Settings{settings.Defaults(), stored}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := settings.DecodePatch(data)
		if err != nil {
			if got := switchboard.ErrorCode(err); got != switchboard.EINVALID {
				t.Fatalf("DecodePatch error code = %q (%v), want %q", got, err, switchboard.EINVALID)
			}
			return
		}
		for _, base := range bases {
			got, err := p.Apply(base)
			if err != nil {
				if code := switchboard.ErrorCode(err); code != switchboard.EINVALID {
					t.Fatalf("Apply error code = %q (%v), want %q", code, err, switchboard.EINVALID)
				}
				if strings.Contains(err.Error(), secretKey) {
					t.Fatalf("Apply error holds the stored access key: %v", err)
				}
				continue
			}
			if err := settings.Validate(got); err != nil {
				t.Fatalf("accepted patch %q gives settings that do not validate: %v", data, err)
			}
			if got.Interact.WidgetKey != base.Interact.WidgetKey {
				t.Fatalf("patch %q changed the widget key", data)
			}
			again, err := p.Apply(got)
			if err != nil || again != got {
				t.Fatalf("patch %q applied twice: %+v, %v; want %+v", data, again, err, got)
			}
		}
	})
}
