package graphsim

import (
	"strings"
	"testing"
)

func testUsers() []map[string]any {
	mk := func(id, name, upn, lang, dept string) map[string]any {
		given, sur, _ := strings.Cut(name, " ")
		return map[string]any{"id": id, "displayName": name, "givenName": given, "surname": sur, "userPrincipalName": upn,
			"mail": upn, "preferredLanguage": lang, "department": dept, "jobTitle": "", "accountEnabled": true}
	}
	return []map[string]any{
		mk("1", "Anna Meier", "anna@contoso.onmicrosoft.com", "en-GB", "Support"),
		mk("2", "Bob O'Neil", "bob@contoso.onmicrosoft.com", "de-CH", "Sales"),
		mk("3", "Zoë Çelik", "zoe@partner.example", "en-GB", "Support"),
		mk("4", "anna Other", "anna.o@partner.example", "", "Billing"),
	}
}

// matching returns the ids the filter selects.
func matching(t *testing.T, f *parsedFilter) string {
	t.Helper()
	var ids []string
	for _, u := range testUsers() {
		if f.root.eval(u) {
			ids = append(ids, u["id"].(string))
		}
	}
	return strings.Join(ids, ",")
}

func TestFilterCases(t *testing.T) {
	cases := []struct {
		name, filter string
		want         string // matching ids, comma-separated
		advanced     string
	}{
		{"startswith", "startswith(displayName,'anna')", "1,4", ""},
		{"function names in any case", "StartsWith(displayName,'ANNA')", "1,4", ""},
		{"endsWith needs advanced", "endsWith(userPrincipalName,'onmicrosoft.com')", "1,2", "endsWith"},
		{"eq is case-insensitive", "preferredLanguage eq 'EN-gb'", "1,3", ""},
		{"seed 004 example", "endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'", "1", "endsWith"},
		{"or", "department eq 'Sales' or department eq 'Billing'", "2,4", ""},
		{"and binds tighter than or", "department eq 'Sales' or department eq 'Support' and preferredLanguage eq 'de-CH'", "2", ""},
		{"parentheses", "(department eq 'Sales' or department eq 'Support') and preferredLanguage eq 'en-GB'", "1,3", ""},
		{"doubled quote inside a literal", "startswith(displayName,'Bob O''N')", "2", ""},
		{"quote, paren and or stay inside the literal", "startswith(displayName,''') or true eq true or (''')", "", ""},
		{"unicode literal", "startswith(displayName,'zoë ç')", "3", ""},
		{"ne", "department ne 'Support'", "2,4", "ne"},
		{"not", "not(department eq 'Support')", "2,4", "not"},
		{"eq null", "preferredLanguage eq null", "4", "eq null"},
		{"bool", "accountEnabled eq true", "1,2,3,4", ""},
		{"nested", "((((startswith(mail,'bob'))))) or ((startswith(mail,'zoe')))", "2,3", ""},
		{"operators in any case", "department EQ 'Sales' OR department Eq 'Billing'", "2,4", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseFilter(c.filter)
			if err != nil {
				t.Fatalf("parseFilter(%q): %v", c.filter, err)
			}
			if got := matching(t, f); got != c.want {
				t.Errorf("%q matches %q, want %q", c.filter, got, c.want)
			}
			if f.advanced != c.advanced {
				t.Errorf("%q: advanced %q, want %q", c.filter, f.advanced, c.advanced)
			}
		})
	}
}

func TestFilterRefusals(t *testing.T) {
	cases := []struct {
		name, filter, code, message string
	}{
		{"unterminated literal", "startswith(displayName,'abc)", "BadRequest", "unterminated string literal"},
		{"missing paren", "startswith(displayName,'a'", "BadRequest", "Syntax error"},
		{"unbalanced parentheses", "(department eq 'Sales'))", "BadRequest", "Syntax error"},
		{"unknown property", "startswith(nickName,'a')", "BadRequest", "Could not find a property named 'nickName'"},
		{"unknown function", "contains(displayName,'a')", "BadRequest", "unknown function with name 'contains'"},
		{"unsupported operator", "department gt 'A'", "Request_UnsupportedQuery", "Unsupported or invalid query filter clause"},
		{"property compared to property", "department eq jobTitle", "Request_UnsupportedQuery", "property 'jobTitle'"},
		{"type mismatch", "accountEnabled eq 'yes'", "BadRequest", "incompatible types"},
		{"dangling and", "department eq 'Sales' and", "BadRequest", "Syntax error"},
		{"stray character", "department eq 'Sales' & x", "BadRequest", "not valid at position"},
		{"bare word literal", "department eq Sales", "BadRequest", "Could not find a property named 'Sales'"},
		{"empty parentheses", "()", "BadRequest", "Syntax error"},
		{"too many clauses", strings.Repeat("department eq 'a' or ", 120) + "department eq 'a'", "BadRequest", "node count limit"},
		{"too deep", strings.Repeat("(", 80) + "department eq 'a'" + strings.Repeat(")", 80), "BadRequest", "node count limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseFilter(c.filter)
			fe, ok := err.(*filterError)
			if !ok {
				t.Fatalf("parseFilter(%q) = %v, want a %s refusal", c.filter, err, c.code)
			}
			if fe.Code != c.code || !strings.Contains(fe.Message, c.message) {
				t.Errorf("parseFilter(%q) = %s: %s; want %s containing %q", c.filter, fe.Code, fe.Message, c.code, c.message)
			}
		})
	}
}

// FuzzParseFilter: any input parses or is refused with Graph's error shape,
// never panics, and a parsed filter evaluates.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"startswith(displayName,'a')", "endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'",
		"(a eq 'x') or (b ne 'y')", "not(accountEnabled eq false)", "startswith(displayName,'it''s')", "'", "((", "eq eq eq",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseFilter(s)
		if err != nil {
			fe, ok := err.(*filterError)
			if !ok || (fe.Code != "BadRequest" && fe.Code != "Request_UnsupportedQuery") || fe.Message == "" {
				t.Fatalf("parseFilter(%q): %v is not Graph's refusal", s, err)
			}
			return
		}
		for _, u := range testUsers() {
			p.root.eval(u)
		}
	})
}
