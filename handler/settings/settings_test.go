package settings_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"switchboard/handler/settings"
	"switchboard/handler/switchboard"
)

// secretKey is an access key that must never show up anywhere.
var secretKey = base64.StdEncoding.EncodeToString([]byte("do-not-leak-this-access-key-0123456789"))

const validCS = "endpoint=https://contoso.communication.azure.com/;accesskey="

func connString() string { return validCS + secretKey }

func TestDefaults(t *testing.T) {
	d := settings.Defaults()
	if got, want := d.Outbound.MaxScheduledTasksPerService, 20; got != want {
		t.Errorf("outbound.maxScheduledTasksPerService = %d, want %d", got, want)
	}
	if got, want := d.Interact.SessionRecoveryTimeoutSeconds, 20; got != want {
		t.Errorf("interact.sessionRecoveryTimeoutSeconds = %d, want %d", got, want)
	}
	if got, want := d.Interact.Authorization, "None"; got != want {
		t.Errorf("interact.authorization = %q, want %q", got, want)
	}
	if d.Interact.Enabled || d.Assistant.UseOwnACSInstance || d.PresenceTracking.TrackOverGuestAccounts {
		t.Errorf("switches on by default: %+v", d)
	}
	if err := settings.Validate(d); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

// patch applies p to base and returns the result or the error.
func patch(t *testing.T, base settings.Settings, p string) (settings.Settings, error) {
	t.Helper()
	dp, err := settings.DecodePatch([]byte(p))
	if err != nil {
		return settings.Settings{}, err
	}
	return dp.Apply(base)
}

func TestPatchBoundsAndTypes(t *testing.T) {
	tests := []struct {
		name      string
		patch     string
		wantField string // "" means accepted
		wantMsg   string // substring of the error
		check     func(settings.Settings) bool
	}{
		{name: "max tasks lower bound", patch: `{"outbound":{"maxScheduledTasksPerService":1}}`, check: func(s settings.Settings) bool { return s.Outbound.MaxScheduledTasksPerService == 1 }},
		{name: "max tasks upper bound", patch: `{"outbound":{"maxScheduledTasksPerService":50}}`, check: func(s settings.Settings) bool { return s.Outbound.MaxScheduledTasksPerService == 50 }},
		{name: "max tasks below", patch: `{"outbound":{"maxScheduledTasksPerService":0}}`, wantField: "outbound.maxScheduledTasksPerService", wantMsg: "from 1 to 50"},
		{name: "max tasks above", patch: `{"outbound":{"maxScheduledTasksPerService":51}}`, wantField: "outbound.maxScheduledTasksPerService", wantMsg: "from 1 to 50"},
		{name: "max tasks fraction", patch: `{"outbound":{"maxScheduledTasksPerService":20.5}}`, wantField: "outbound.maxScheduledTasksPerService", wantMsg: "integer"},
		{name: "max tasks as string", patch: `{"outbound":{"maxScheduledTasksPerService":"20"}}`, wantField: "outbound.maxScheduledTasksPerService", wantMsg: "not a string"},
		{name: "max tasks huge", patch: `{"outbound":{"maxScheduledTasksPerService":1e300}}`, wantField: "outbound.maxScheduledTasksPerService", wantMsg: "from 1 to 50"},
		{name: "max tasks 2e1 is 20", patch: `{"outbound":{"maxScheduledTasksPerService":2e1}}`, check: func(s settings.Settings) bool { return s.Outbound.MaxScheduledTasksPerService == 20 }},
		{name: "max tasks null resets", patch: `{"outbound":{"maxScheduledTasksPerService":null}}`, check: func(s settings.Settings) bool { return s.Outbound.MaxScheduledTasksPerService == 20 }},
		{name: "recovery lower bound", patch: `{"interact":{"sessionRecoveryTimeoutSeconds":5}}`, check: func(s settings.Settings) bool { return s.Interact.SessionRecoveryTimeoutSeconds == 5 }},
		{name: "recovery upper bound", patch: `{"interact":{"sessionRecoveryTimeoutSeconds":60}}`, check: func(s settings.Settings) bool { return s.Interact.SessionRecoveryTimeoutSeconds == 60 }},
		{name: "recovery below", patch: `{"interact":{"sessionRecoveryTimeoutSeconds":4}}`, wantField: "interact.sessionRecoveryTimeoutSeconds", wantMsg: "from 5 to 60"},
		{name: "recovery above", patch: `{"interact":{"sessionRecoveryTimeoutSeconds":61}}`, wantField: "interact.sessionRecoveryTimeoutSeconds", wantMsg: "from 5 to 60"},
		{name: "recovery negative", patch: `{"interact":{"sessionRecoveryTimeoutSeconds":-20}}`, wantField: "interact.sessionRecoveryTimeoutSeconds", wantMsg: "got -20"},
		{name: "authorization", patch: `{"interact":{"authorization":"VerifyTokenAndTenant"}}`, check: func(s settings.Settings) bool { return s.Interact.Authorization == "VerifyTokenAndTenant" }},
		{name: "authorization wrong case", patch: `{"interact":{"authorization":"verifytoken"}}`, wantField: "interact.authorization", wantMsg: "None, VerifyToken, VerifyTokenAndTenant"},
		{name: "authorization number", patch: `{"interact":{"authorization":1}}`, wantField: "interact.authorization", wantMsg: "must be a string"},
		{name: "team visibility", patch: `{"attendantConsole":{"teamVisibility":"OwnMembers"}}`, check: func(s settings.Settings) bool { return s.AttendantConsole.TeamVisibility == "OwnMembers" }},
		{name: "team visibility unknown", patch: `{"attendantConsole":{"teamVisibility":"Some"}}`, wantField: "attendantConsole.teamVisibility", wantMsg: "NoMembers, OwnMembers, AllMembers"},
		{name: "filter", patch: `{"attendantConsole":{"contactSearchFilter":"endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'"}}`, check: func(s settings.Settings) bool {
			return strings.HasPrefix(s.AttendantConsole.ContactSearchFilter, "endsWith(")
		}},
		{name: "filter with newline", patch: `{"attendantConsole":{"contactSearchFilter":"a eq 'b'\nor 1"}}`, wantField: "attendantConsole.contactSearchFilter", wantMsg: "control characters"},
		{name: "filter too long", patch: `{"attendantConsole":{"contactSearchFilter":"` + strings.Repeat("x", 2049) + `"}}`, wantField: "attendantConsole.contactSearchFilter", wantMsg: "at most 2048"},
		{name: "o365 user id", patch: `{"interact":{"o365UserId":"0F3E2D1C-0000-4000-8000-000000000001"}}`, check: func(s settings.Settings) bool { return s.Interact.O365UserID == "0f3e2d1c-0000-4000-8000-000000000001" }},
		{name: "o365 user id not a guid", patch: `{"interact":{"o365UserId":"someone@contoso.com"}}`, wantField: "interact.o365UserId", wantMsg: "GUID"},
		{name: "track over guests", patch: `{"presenceTracking":{"trackOverGuestAccounts":true}}`, check: func(s settings.Settings) bool { return s.PresenceTracking.TrackOverGuestAccounts }},
		{name: "bool as string", patch: `{"presenceTracking":{"trackOverGuestAccounts":"true"}}`, wantField: "presenceTracking.trackOverGuestAccounts", wantMsg: "true or false"},
		{name: "widget key read-only", patch: `{"interact":{"widgetKey":"0f3e2d1c-0000-4000-8000-000000000001"}}`, wantField: "interact.widgetKey", wantMsg: "read-only"},
		{name: "account1 read-only", patch: `{"presenceTracking":{"account1Upn":"x@y.z"}}`, wantField: "presenceTracking.account1Upn", wantMsg: "read-only"},
		{name: "account2 read-only", patch: `{"presenceTracking":{"account2Upn":null}}`, wantField: "presenceTracking.account2Upn", wantMsg: "read-only"},
		{name: "account status read-only", patch: `{"presenceTracking":{"account1Status":{}}}`, wantField: "presenceTracking.account1Status", wantMsg: "read-only"},
		{name: "connection string flag read-only", patch: `{"interact":{"acsConnectionStringSet":false}}`, wantField: "interact.acsConnectionStringSet", wantMsg: "read-only"},
		{name: "unknown setting", patch: `{"interact":{"colour":"blue"}}`, wantField: "interact.colour", wantMsg: "unknown setting"},
		{name: "unknown section", patch: `{"billing":{}}`, wantField: "billing", wantMsg: "unknown settings section"},
		{name: "section null", patch: `{"interact":null}`, wantField: "interact", wantMsg: "cannot be null"},
		{name: "section not an object", patch: `{"interact":true}`, wantField: "interact", wantMsg: "must be an object"},
		{name: "not an object", patch: `[1]`, wantMsg: "must be a JSON object"},
		{name: "empty", patch: ``, wantMsg: "empty"},
		{name: "syntax", patch: `{"outbound":`, wantMsg: "not JSON"},
		{name: "trailing", patch: `{} {}`, wantMsg: "trailing"},
		{name: "empty object changes nothing", patch: `{}`, check: func(s settings.Settings) bool { return s == settings.Defaults() }},
		{name: "enable without connection string", patch: `{"interact":{"enabled":true}}`, wantField: "interact.enabled", wantMsg: "ACS connection string"},
		{name: "enable with connection string", patch: `{"interact":{"enabled":true,"acsConnectionString":"` + connString() + `"}}`, check: func(s settings.Settings) bool {
			return s.Interact.Enabled && s.Interact.ACSConnectionString.Reveal() == connString()
		}},
		{name: "own ACS without connection string", patch: `{"assistant":{"useOwnAcsInstance":true}}`, wantField: "assistant.useOwnAcsInstance", wantMsg: "ACS connection string"},
		{name: "own ACS with connection string", patch: `{"assistant":{"useOwnAcsInstance":true,"acsConnectionString":"` + connString() + `"}}`, check: func(s settings.Settings) bool { return s.Assistant.UseOwnACSInstance }},
		{name: "malformed connection string", patch: `{"interact":{"acsConnectionString":"endpoint=https://contoso.communication.azure.com/;accesskey=` + secretKey + `!!"}}`, wantField: "interact.acsConnectionString", wantMsg: "not base64"},
		{name: "connection string without endpoint", patch: `{"assistant":{"acsConnectionString":"accesskey=` + secretKey + `"}}`, wantField: "assistant.acsConnectionString", wantMsg: "endpoint is missing"},
		{name: "connection string as number", patch: `{"assistant":{"acsConnectionString":42}}`, wantField: "assistant.acsConnectionString", wantMsg: "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch(t, settings.Defaults(), tt.patch)
			if tt.wantField == "" && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("patch refused: %v", err)
				}
				if !tt.check(got) {
					t.Errorf("patched settings %+v do not hold the change", got)
				}
				if err := settings.Validate(got); err != nil {
					t.Errorf("patched settings do not validate: %v", err)
				}
				return
			}
			if got, want := switchboard.ErrorCode(err), switchboard.EINVALID; got != want {
				t.Fatalf("code = %q (%v), want %q", got, err, want)
			}
			if got := switchboard.ErrorField(err); got != tt.wantField {
				t.Errorf("field = %q, want %q", got, tt.wantField)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if tt.wantField != "" && !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("error %q does not name %s", err, tt.wantField)
			}
			if strings.Contains(err.Error(), secretKey[:16]) {
				t.Errorf("error %q holds the access key", err)
			}
		})
	}
}

func TestPatchMergesAndResets(t *testing.T) {
	base, err := patch(t, settings.Defaults(), `{"outbound":{"maxScheduledTasksPerService":7},"interact":{"enabled":true,"acsConnectionString":"`+connString()+`","authorization":"VerifyToken"}}`)
	if err != nil {
		t.Fatal(err)
	}
	base.Interact.WidgetKey = "0f3e2d1c-0000-4000-8000-00000000000a"
	got, err := patch(t, base, `{"interact":{"authorization":null},"attendantConsole":{"teamVisibility":"NoMembers"}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.Interact.Authorization = "None"
	want.AttendantConsole.TeamVisibility = "NoMembers"
	if got != want {
		t.Errorf("patched = %+v\nwant      %+v", got, want)
	}

	// Removing the connection string while Interact is on names the string.
	_, err = patch(t, base, `{"interact":{"acsConnectionString":null}}`)
	if got, want := switchboard.ErrorField(err), "interact.acsConnectionString"; got != want {
		t.Errorf("removing the string while enabled: field %q (%v), want %q", got, err, want)
	}
	// Both in one patch is fine.
	got, err = patch(t, base, `{"interact":{"acsConnectionString":null,"enabled":false}}`)
	if err != nil || got.Interact.ACSConnectionString.IsSet() || got.Interact.Enabled {
		t.Errorf("disable and remove: %+v, %v", got.Interact, err)
	}
	// A later patch keeps the stored string.
	got, err = patch(t, base, `{"interact":{"sessionRecoveryTimeoutSeconds":30}}`)
	if err != nil || got.Interact.ACSConnectionString.Reveal() != connString() {
		t.Errorf("unrelated patch lost the connection string: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s, err := patch(t, settings.Defaults(), `{"interact":{"enabled":true,"acsConnectionString":"`+connString()+`"},"assistant":{"acsConnectionString":"`+connString()+`"}}`)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(js)} {
		if strings.Contains(out, secretKey) || strings.Contains(out, "accesskey") {
			t.Errorf("settings print their secret: %s", out)
		}
	}
}

func TestValidateRefusesStoredNonsense(t *testing.T) {
	tests := []struct {
		name      string
		change    func(*settings.Settings)
		wantField string
	}{
		{"tasks", func(s *settings.Settings) { s.Outbound.MaxScheduledTasksPerService = 0 }, "outbound.maxScheduledTasksPerService"},
		{"recovery", func(s *settings.Settings) { s.Interact.SessionRecoveryTimeoutSeconds = 61 }, "interact.sessionRecoveryTimeoutSeconds"},
		{"authorization", func(s *settings.Settings) { s.Interact.Authorization = "" }, "interact.authorization"},
		{"visibility", func(s *settings.Settings) { s.AttendantConsole.TeamVisibility = "allmembers" }, "attendantConsole.teamVisibility"},
		{"widget key", func(s *settings.Settings) { s.Interact.WidgetKey = "nope" }, "interact.widgetKey"},
		{"secret", func(s *settings.Settings) { s.Assistant.ACSConnectionString = "endpoint=x" }, "assistant.acsConnectionString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settings.Defaults()
			tt.change(&s)
			if got := switchboard.ErrorField(settings.Validate(s)); got != tt.wantField {
				t.Errorf("field = %q, want %q", got, tt.wantField)
			}
		})
	}
}
