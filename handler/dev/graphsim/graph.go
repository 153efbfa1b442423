package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxIDs is Graph's limit of ids per getPresencesByUserId request.
const MaxIDs = 650

func (s *Sim) graphHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.0/communications/getPresencesByUserId", s.getPresences)
	mux.HandleFunc("GET /v1.0/users", s.listUsers)
	mux.HandleFunc("GET /v1.0/users/{id}", s.getUser)
	mux.HandleFunc("GET /v1.0/users/{id}/presence", s.getUserPresence)
	mux.HandleFunc("POST /v1.0/users/{id}/onlineMeetings", s.createMeeting)
	s.registerSubscriptions(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource not found for the segment '"+r.URL.Path+"'.")
	})
	return mux
}

// graphError writes a Graph OData error.
func graphError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":       code,
		"message":    message,
		"innerError": map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "request-id": "00000000-0000-0000-0000-000000000000"},
	}})
}

// caeChallenge answers a token issued before its account's sessions were
// revoked as Graph does under continuous access evaluation: 401 with the
// claims a new token must satisfy (not before the revocation), base64 in
// WWW-Authenticate.
func caeChallenge(w http.ResponseWriter, loginURL string, revokedAt time.Time) {
	claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, revokedAt.Unix())
	w.Header().
		Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%scommon/oauth2/authorize", `+
			`client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="%s"`,
			loginURL, base64.StdEncoding.EncodeToString([]byte(claims))))
	graphError(
		w,
		http.StatusUnauthorized,
		"InvalidAuthenticationToken",
		"Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
	)
}

// admit does what every Graph request goes through: the bearer token, the
// tenant's consent for it, injected faults, throttling and latency. It
// writes the reply and returns false when the request stops here.
func (s *Sim) admit(w http.ResponseWriter, r *http.Request) (tokenInfo, *tenant, bool) {
	return s.admitFor(w, r, false)
}

// admitFor is admit; userRead says the request lists users, which an app
// token may do only with User.Read.All (application) consented.
func (s *Sim) admitFor(w http.ResponseWriter, r *http.Request, userRead bool) (tokenInfo, *tenant, bool) {
	s.mu.Lock()
	s.stats.GraphRequests++
	h := r.Header.Get("Authorization")
	tok, found := strings.CutPrefix(h, "Bearer ")
	ti, ok := s.tokens[tok]
	if !found || !ok || time.Now().After(ti.expires) {
		s.stats.Unauthorized++
		s.mu.Unlock()
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty or invalid.")
		return tokenInfo{}, nil, false
	}
	if acc := s.accounts[lower(ti.upn)]; ti.upn != "" && acc != nil && !ti.issued.After(acc.revokedAt) {
		s.stats.Unauthorized++
		s.mu.Unlock()
		caeChallenge(w, s.loginURL, acc.revokedAt)
		return tokenInfo{}, nil, false
	}
	t := s.tenants[ti.tenant]
	if t == nil {
		s.stats.Unauthorized++
		s.mu.Unlock()
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: unknown tenant.")
		return tokenInfo{}, nil, false
	}
	// Consent and guest status are checked on every request: an admin may
	// revoke them while a token is still valid.
	allowed := t.appConsent
	if userRead {
		allowed = t.userReadConsent
	}
	if ti.upn != "" {
		allowed = t.delegatedConsent && t.guests[lower(ti.upn)]
	}
	if !allowed {
		s.stats.Forbidden++
		s.mu.Unlock()
		graphError(w, http.StatusForbidden, "Forbidden", "Insufficient privileges to complete the operation.")
		return tokenInfo{}, nil, false
	}
	if len(t.faults) > 0 {
		f := t.faults[0]
		t.faults = t.faults[1:]
		s.stats.Faults++
		s.mu.Unlock()
		writeFault(w, f)
		return tokenInfo{}, nil, false
	}
	if limit := s.opts.ThrottleLimit; limit > 0 {
		key := ti.clientID + "/" + ti.tenant
		now := time.Now()
		window := s.opts.ThrottleWindow
		recent := s.throttle[key][:0]
		for _, at := range s.throttle[key] {
			if now.Sub(at) < window {
				recent = append(recent, at)
			}
		}
		if len(recent) >= limit {
			wait := window - now.Sub(recent[0])
			s.throttle[key] = recent
			s.stats.Throttled++
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			graphError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
			return tokenInfo{}, nil, false
		}
		s.throttle[key] = append(recent, now)
	}
	delay := s.opts.Latency
	if s.opts.Jitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(s.opts.Jitter)))
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return tokenInfo{}, nil, false
		}
	}
	return ti, t, true
}

func writeFault(w http.ResponseWriter, f Fault) {
	if f.Malformed {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"value":[{"id":"`)
		return
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	if f.Body == "" && (f.ContentType == "" || strings.Contains(f.ContentType, "json")) {
		code := "UnknownError"
		switch status {
		case http.StatusTooManyRequests:
			code = "TooManyRequests"
		case http.StatusServiceUnavailable:
			code = "ServiceUnavailable"
		}
		graphError(w, status, code, "An injected fault.")
		return
	}
	ct := f.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, f.Body)
}

type presenceJSON struct {
	ID                  string          `json:"id"`
	Availability        string          `json:"availability"`
	Activity            string          `json:"activity"`
	StatusMessage       *struct{}       `json:"statusMessage"`
	OutOfOfficeSettings outOfOfficeJSON `json:"outOfOfficeSettings"`
}

type outOfOfficeJSON struct {
	Message       *string `json:"message"`
	IsOutOfOffice bool    `json:"isOutOfOffice"`
}

func (u *user) presence() presenceJSON {
	return presenceJSON{ID: u.id, Availability: u.availability, Activity: u.activity, OutOfOfficeSettings: outOfOfficeJSON{IsOutOfOffice: u.outOfOffice}}
}

func (s *Sim) getPresences(w http.ResponseWriter, r *http.Request) {
	_, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	var body struct {
		IDs []string `json:"ids"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.count(func(st *Stats) { st.BadRequests++ })
		graphError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload: "+err.Error())
		return
	}
	if len(body.IDs) == 0 || len(body.IDs) > MaxIDs {
		s.count(func(st *Stats) { st.BadRequests++ })
		graphError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("The number of ids must be between 1 and %d; got %d.", MaxIDs, len(body.IDs)))
		return
	}
	s.mu.Lock()
	out := make([]presenceJSON, 0, len(body.IDs))
	for _, id := range body.IDs {
		if u := t.users[lower(id)]; u != nil {
			out = append(out, u.presence())
		}
	}
	s.stats.PresenceCalls++
	s.stats.PresenceIDs += len(body.IDs)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.graphURL + "/$metadata#Collection(microsoft.graph.presence)", "value": out})
}

func (s *Sim) getUserPresence(w http.ResponseWriter, r *http.Request) {
	_, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	u := t.users[lower(r.PathValue("id"))]
	if u == nil {
		s.mu.Unlock()
		graphError(
			w,
			http.StatusNotFound,
			"Request_ResourceNotFound",
			"Resource '"+r.PathValue("id")+"' does not exist or one of its queried reference-property objects are not present.",
		)
		return
	}
	p := u.presence()
	s.stats.SingleReads++
	s.mu.Unlock()
	writeJSON(
		w,
		http.StatusOK,
		map[string]any{
			"@odata.context":      s.graphURL + "/$metadata#users('" + u.id + "')/presence/$entity",
			"id":                  p.ID,
			"availability":        p.Availability,
			"activity":            p.Activity,
			"statusMessage":       nil,
			"outOfOfficeSettings": p.OutOfOfficeSettings,
		},
	)
}

func (s *Sim) getUser(w http.ResponseWriter, r *http.Request) {
	_, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	key := lower(r.PathValue("id"))
	s.mu.Lock()
	u := t.users[key]
	if u == nil {
		u = t.byUPN[key]
	}
	if u == nil {
		s.mu.Unlock()
		graphError(
			w,
			http.StatusNotFound,
			"Request_ResourceNotFound",
			"Resource '"+r.PathValue("id")+"' does not exist or one of its queried reference-property objects are not present.",
		)
		return
	}
	s.stats.UserReads++
	reply := map[string]any{"@odata.context": s.graphURL + "/$metadata#users/$entity", "id": u.id, "userPrincipalName": u.upn, "displayName": u.displayName}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, reply)
}

func (s *Sim) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// createMeeting serves POST /users/{id}/onlineMeetings with an application
// token, as Graph does: OnlineMeetings.ReadWrite.All must be granted, the
// organizer must exist and have an application access policy for the app.
func (s *Sim) createMeeting(w http.ResponseWriter, r *http.Request) {
	ti, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	var body struct {
		Subject       string    `json:"subject"`
		StartDateTime time.Time `json:"startDateTime"`
		EndDateTime   time.Time `json:"endDateTime"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.count(func(st *Stats) { st.BadRequests++ })
		graphError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload: "+err.Error())
		return
	}
	key := lower(r.PathValue("id"))
	s.mu.Lock()
	defer s.mu.Unlock()
	switch u := t.users[key]; {
	case ti.upn != "" || !t.meetingsConsent:
		s.stats.Forbidden++
		graphError(w, http.StatusForbidden, "Forbidden", "Insufficient privileges to complete the operation.")
	case u == nil:
		graphError(w, http.StatusNotFound, "NotFound", "The requested user '"+r.PathValue("id")+"' is invalid.")
	case !t.meetingPolicy[key]:
		s.stats.Forbidden++
		graphError(w, http.StatusForbidden, "Forbidden", "No application access policy found for this app.")
	case !body.EndDateTime.IsZero() && !body.EndDateTime.After(body.StartDateTime):
		graphError(w, http.StatusBadRequest, "BadRequest", "endDateTime must be after startDateTime.")
	default:
		t.meetings[key]++
		id := s.newID()
		writeJSON(w, http.StatusCreated, map[string]any{
			"@odata.context": s.graphURL + "/$metadata#users('" + u.id + "')/onlineMeetings/$entity",
			"id":             "MSo" + id, "subject": body.Subject,
			"startDateTime": body.StartDateTime.UTC().Format(time.RFC3339), "endDateTime": body.EndDateTime.UTC().Format(time.RFC3339),
			"joinWebUrl":   "https://teams.microsoft.com/l/meetup-join/19%3ameeting_" + id + "%40thread.v2/0",
			"participants": map[string]any{"organizer": map[string]any{"identity": map[string]any{"user": map[string]any{"id": u.id}}}},
		})
	}
}
