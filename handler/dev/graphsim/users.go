package graphsim

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// UserQuery is one GET /users request as the simulator received it (tests
// check what Graph is asked).
type UserQuery struct {
	Filter           string // $filter, decoded
	Count            string // $count
	Top              string // $top
	Select           string // $select
	ConsistencyLevel string // the ConsistencyLevel header
	SkipToken        bool   // a next page
	Status           int    // the answer
}

// UserQueries returns the GET /users requests received so far, oldest
// first.
func (s *Sim) UserQueries() []UserQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]UserQuery(nil), s.queries...)
}

// maxUserPage is Graph's largest $top for users; defaultUserPage its page
// size without one.
const (
	maxUserPage     = 999
	defaultUserPage = 100
)

// selectable are the properties $select may name, by lower-case name.
var selectable = map[string]string{}

func init() {
	for k, v := range userProperties {
		selectable[k] = v.name
	}
}

func (u *user) properties() map[string]any {
	return map[string]any{
		"id": u.id, "displayName": u.displayName, "userPrincipalName": u.upn,
		"givenName": u.profile.GivenName, "surname": u.profile.Surname, "mail": u.profile.Mail,
		"jobTitle": u.profile.JobTitle, "department": u.profile.Department,
		"preferredLanguage": u.profile.PreferredLanguage, "accountEnabled": true,
	}
}

// listUsers serves GET /users with $filter (filter.go), $count, $top,
// $select and $skiptoken paging, refusing what Graph refuses: advanced
// clauses (endsWith, ne, not, eq null) without ConsistencyLevel: eventual
// and $count=true, malformed filters, unknown properties, a $top out of
// 1–999.
func (s *Sim) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, t, ok := s.admitFor(w, r, true)
	if !ok {
		s.record(UserQuery{Filter: q.Get("$filter"), ConsistencyLevel: r.Header.Get("ConsistencyLevel")}, 0)
		return
	}
	offset := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		// The token carries the original query and where the next page
		// starts.
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		off, rest, ok := strings.Cut(string(raw), "|")
		n, aerr := strconv.Atoi(off)
		orig, perr := url.ParseQuery(rest)
		if err != nil || !ok || aerr != nil || perr != nil || n < 0 {
			s.refuseUsers(w, r, UserQuery{SkipToken: true}, http.StatusBadRequest, "Request_BadRequest", "The specified page token value has expired or is invalid.")
			return
		}
		q, offset = orig, n
	}
	rec := UserQuery{Filter: q.Get("$filter"), Count: q.Get("$count"), Top: q.Get("$top"), Select: q.Get("$select"),
		ConsistencyLevel: r.Header.Get("ConsistencyLevel"), SkipToken: offset > 0}
	top := defaultUserPage
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxUserPage {
			s.refuseUsers(w, r, rec, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between "+
				"1 and %d inclusive.", v, maxUserPage))
			return
		}
		top = n
	}
	count := false
	switch strings.ToLower(q.Get("$count")) {
	case "", "false":
	case "true":
		count = true
	default:
		s.refuseUsers(w, r, rec, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $count query option found. Valid values "+
			"are 'true', 'false'.", q.Get("$count")))
		return
	}
	fields := []string{"id", "displayName", "userPrincipalName", "givenName", "surname", "mail", "jobTitle", "preferredLanguage"}
	if v := q.Get("$select"); v != "" {
		fields = fields[:0]
		for _, f := range strings.Split(v, ",") {
			name, known := selectable[strings.ToLower(strings.TrimSpace(f))]
			if !known {
				s.refuseUsers(w, r, rec, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Could not find a property named '%s' on type "+
					"'microsoft.graph.user'.", strings.TrimSpace(f)))
				return
			}
			fields = append(fields, name)
		}
	}
	var filter *parsedFilter
	if v := q.Get("$filter"); v != "" {
		f, err := parseFilter(v)
		if err != nil {
			fe := err.(*filterError)
			s.refuseUsers(w, r, rec, http.StatusBadRequest, fe.Code, fe.Message)
			return
		}
		if f.advanced != "" && (!strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual") || !count) {
			s.refuseUsers(w, r, rec, http.StatusBadRequest, "Request_UnsupportedQuery",
				fmt.Sprintf("Operator '%s' is not supported because the required parameters might be missing. Try adding $count with a value of "+
					"true and the ConsistencyLevel header set to eventual.", f.advanced))
			return
		}
		filter = f
	}

	s.mu.Lock()
	var matched []*user
	for _, u := range t.order {
		if filter == nil || filter.root.eval(u.properties()) {
			matched = append(matched, u)
		}
	}
	page := []map[string]any{}
	end := min(offset+top, len(matched))
	for _, u := range matched[min(offset, len(matched)):end] {
		props := u.properties()
		out := map[string]any{"id": u.id}
		for _, f := range fields {
			v := props[f]
			if sv, ok := v.(string); ok && sv == "" {
				v = nil
			}
			out[f] = v
		}
		page = append(page, out)
	}
	s.stats.UserSearches++
	rec.Status = http.StatusOK
	s.queries = append(s.queries, rec)
	s.mu.Unlock()

	reply := map[string]any{"@odata.context": s.graphURL + "/$metadata#users", "value": page}
	if count {
		reply["@odata.count"] = len(matched)
	}
	if end < len(matched) {
		q.Del("$skiptoken")
		tok := base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end) + "|" + q.Encode()))
		reply["@odata.nextLink"] = s.graphURL + "/users?$skiptoken=" + tok
	}
	writeJSON(w, http.StatusOK, reply)
}

func (s *Sim) refuseUsers(w http.ResponseWriter, _ *http.Request, rec UserQuery, status int, code, message string) {
	s.record(rec, status)
	s.count(func(st *Stats) { st.BadRequests++ })
	graphError(w, status, code, message)
}

func (s *Sim) record(rec UserQuery, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Status = status
	s.queries = append(s.queries, rec)
}
