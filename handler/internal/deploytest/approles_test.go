package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/switchboard"
)

// infra/app-roles.json (az ad app update --app-roles) defines exactly the
// app roles the handler checks (SPEC section 9), each with its own id;
// the Flow and Admin roles can be granted to applications (bots, client
// credentials), the others only to users.
func TestAppRolesFileDefinesTheHandlersRoles(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "infra", "app-roles.json"))
	if err != nil {
		t.Fatal(err)
	}
	var roles []struct {
		ID                 string   `json:"id"`
		Value              string   `json:"value"`
		DisplayName        string   `json:"displayName"`
		Description        string   `json:"description"`
		AllowedMemberTypes []string `json:"allowedMemberTypes"`
		IsEnabled          bool     `json:"isEnabled"`
	}
	if err := json.Unmarshal(raw, &roles); err != nil {
		t.Fatalf("app-roles.json: %v", err)
	}
	var values []string
	ids := map[string]bool{}
	for _, r := range roles {
		values = append(values, r.Value)
		if u, err := uuid.Parse(r.ID); err != nil || u.String() != r.ID || ids[r.ID] {
			t.Errorf("%s: id %q is not a unique lower-case GUID", r.Value, r.ID)
		}
		ids[r.ID] = true
		if !r.IsEnabled || r.DisplayName == "" || r.Description == "" || len(r.DisplayName) > 100 {
			t.Errorf("%s: enabled %v, display name %q, description %q", r.Value, r.IsEnabled, r.DisplayName, r.Description)
		}
		wantApp := r.Value == switchboard.RoleFlow || r.Value == switchboard.RoleAdmin
		if !slices.Contains(r.AllowedMemberTypes, "User") || slices.Contains(r.AllowedMemberTypes, "Application") != wantApp {
			t.Errorf("%s: allowedMemberTypes %v", r.Value, r.AllowedMemberTypes)
		}
	}
	if !slices.Equal(values, switchboard.Roles) {
		t.Errorf("roles %v, want the handler's %v", values, switchboard.Roles)
	}
}
