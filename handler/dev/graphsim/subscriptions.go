package graphsim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"switchboard/handler/richnotify"
)

// Subscription rules as Graph applies them to presence.
const (
	// MaxSubscriptionLifetime is the longest expiry Graph grants a
	// presence subscription.
	MaxSubscriptionLifetime = 60 * time.Minute
	// validationTimeout is how long Graph waits for the validation reply.
	validationTimeout = 10 * time.Second
)

// subscription is a Graph change subscription held by the simulator.
type subscription struct {
	id, tenant, clientID, upn string
	users                     map[string]bool
	resource                  string
	notificationURL           string
	lifecycleURL              string
	clientState               string
	cert                      *x509.Certificate
	certID                    string
	expires                   time.Time
}

// SubscriptionInfo is what tests see of a subscription.
type SubscriptionInfo struct {
	ID, Tenant, UPN string
	ClientState     string
	Users           []string
	ExpiresAt       time.Time
}

var presenceResource = regexp.MustCompile(`^/?communications/presences\?\$filter=id in \(((?:'[0-9A-Za-z-]+',?)+)\)$`)

func (s *Sim) registerSubscriptions(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1.0/subscriptions", s.createSubscription)
	mux.HandleFunc("GET /v1.0/subscriptions", s.listSubscriptions)
	mux.HandleFunc("PATCH /v1.0/subscriptions/{id}", s.renewSubscription)
	mux.HandleFunc("DELETE /v1.0/subscriptions/{id}", s.deleteSubscription)
	mux.HandleFunc("POST /v1.0/subscriptions/{id}/reauthorize", s.reauthorizeSubscription)
}

type subscriptionJSON struct {
	ID                        string    `json:"id,omitempty"`
	ChangeType                string    `json:"changeType"`
	Resource                  string    `json:"resource"`
	NotificationURL           string    `json:"notificationUrl"`
	LifecycleNotificationURL  string    `json:"lifecycleNotificationUrl,omitempty"`
	ClientState               string    `json:"clientState,omitempty"`
	ExpirationDateTime        time.Time `json:"expirationDateTime"`
	IncludeResourceData       bool      `json:"includeResourceData"`
	EncryptionCertificate     string    `json:"encryptionCertificate,omitempty"`
	EncryptionCertificateID   string    `json:"encryptionCertificateId,omitempty"`
	ApplicationID             string    `json:"applicationId,omitempty"`
	CreatorID                 string    `json:"creatorId,omitempty"`
	LatestSupportedTLSVersion string    `json:"latestSupportedTlsVersion,omitempty"`
}

func (s *Sim) bad(w http.ResponseWriter, msg string) {
	s.count(func(st *Stats) { st.BadRequests++ })
	graphError(w, http.StatusBadRequest, "ValidationError", msg)
}

// loopbackURL accepts only notification URLs on 127.0.0.0/8 or ::1: the
// simulator never sends anything off the machine.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func (s *Sim) createSubscription(w http.ResponseWriter, r *http.Request) {
	ti, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	if ti.upn == "" {
		s.count(func(st *Stats) { st.Forbidden++ })
		graphError(w, http.StatusForbidden, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: presence "+
			"subscriptions are not supported with application permissions]")
		return
	}
	var in subscriptionJSON
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		s.bad(w, "Unable to read JSON request payload: "+err.Error())
		return
	}
	if in.ChangeType != "updated" {
		s.bad(w, "changeType must be 'updated' for presence")
		return
	}
	m := presenceResource.FindStringSubmatch(in.Resource)
	if m == nil {
		s.bad(w, "Resource '"+in.Resource+"' is not supported.")
		return
	}
	users := map[string]bool{}
	for _, q := range strings.Split(m[1], ",") {
		if q = strings.Trim(q, "'"); q != "" {
			users[lower(q)] = true
		}
	}
	if len(users) == 0 || len(users) > MaxIDs {
		s.bad(w, fmt.Sprintf("A presence subscription takes 1 to %d ids; got %d.", MaxIDs, len(users)))
		return
	}
	if !in.IncludeResourceData || in.EncryptionCertificate == "" || in.EncryptionCertificateID == "" {
		s.bad(w, "includeResourceData with encryptionCertificate and encryptionCertificateId is required for this resource's rich notifications.")
		return
	}
	der, err := base64.StdEncoding.DecodeString(in.EncryptionCertificate)
	var cert *x509.Certificate
	if err == nil {
		cert, err = x509.ParseCertificate(der)
	}
	if err != nil {
		s.bad(w, "encryptionCertificate is not a base64 X.509 certificate.")
		return
	}
	if _, isRSA := cert.PublicKey.(*rsa.PublicKey); !isRSA {
		s.bad(w, "encryptionCertificate must hold an RSA key.")
		return
	}
	now := s.clock()
	if !in.ExpirationDateTime.After(now) || in.ExpirationDateTime.After(now.Add(MaxSubscriptionLifetime+time.Minute)) {
		s.bad(w, fmt.Sprintf("Subscription expiration can only be %v in the future.", MaxSubscriptionLifetime))
		return
	}
	if !loopbackURL(in.NotificationURL) || (in.LifecycleNotificationURL != "" && !loopbackURL(in.LifecycleNotificationURL)) {
		s.bad(w, "The simulator only notifies loopback URLs.")
		return
	}
	s.mu.Lock()
	for _, sub := range s.subs {
		if sub.tenant == t.id && sub.clientID == ti.clientID && lower(sub.upn) == lower(ti.upn) && sub.expires.After(now) {
			s.stats.Conflicts++
			s.mu.Unlock()
			graphError(w, http.StatusConflict, "ExtensionError", "Operation: Create; Exception: [Status Code: Conflict; Reason: a presence "+
				"subscription of this user and application already exists]")
			return
		}
	}
	s.mu.Unlock()
	// The handshake, against both URLs, before answering.
	for _, u := range []string{in.NotificationURL, in.LifecycleNotificationURL} {
		if u == "" {
			continue
		}
		if err := s.validate(r.Context(), u); err != nil {
			s.count(func(st *Stats) { st.ValidationFailures++ })
			s.bad(w, "Subscription validation request failed. "+err.Error())
			return
		}
	}
	s.mu.Lock()
	grant := in.ExpirationDateTime
	if s.maxGrant > 0 && grant.After(now.Add(s.maxGrant)) {
		grant = now.Add(s.maxGrant)
	}
	sub := &subscription{id: s.newID(), tenant: t.id, clientID: ti.clientID, upn: ti.upn, users: users, resource: in.Resource,
		notificationURL: in.NotificationURL, lifecycleURL: in.LifecycleNotificationURL, clientState: in.ClientState,
		cert: cert, certID: in.EncryptionCertificateID, expires: grant.UTC()}
	s.subs[sub.id] = sub
	s.stats.SubscriptionsCreated++
	out := sub.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// listSubscriptions answers the caller's subscriptions: with a delegated
// token, those the user created with this application.
func (s *Sim) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	ti, t, ok := s.admit(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	out := []subscriptionJSON{}
	now := s.clock()
	for _, sub := range s.subs {
		if sub.tenant == t.id && sub.clientID == ti.clientID && lower(sub.upn) == lower(ti.upn) && sub.expires.After(now) {
			j := sub.json()
			j.ClientState = "" // Graph never returns it
			out = append(out, j)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.graphURL + "/$metadata#subscriptions", "value": out})
}

func (sub *subscription) json() subscriptionJSON {
	return subscriptionJSON{ID: sub.id, ChangeType: "updated", Resource: sub.resource, NotificationURL: sub.notificationURL,
		LifecycleNotificationURL: sub.lifecycleURL, ClientState: sub.clientState, ExpirationDateTime: sub.expires,
		IncludeResourceData: true, EncryptionCertificateID: sub.certID, ApplicationID: sub.clientID, LatestSupportedTLSVersion: "v1_2"}
}

// validate does Graph's validation handshake: a POST with a
// validationToken that must come back as text/plain within 10 s.
func (s *Sim) validate(ctx context.Context, target string) error {
	token := "Validation: Testing client application reachability for subscription Request-Id: " + s.newIDLocked()
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("validationToken", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.notifyClient.Do(req)
	if err != nil {
		return fmt.Errorf("the validation request failed: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the validation request answered %d", resp.StatusCode)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return fmt.Errorf("the validation reply is %q, not text/plain", resp.Header.Get("Content-Type"))
	}
	if string(body) != token {
		return fmt.Errorf("the validation reply is not the token")
	}
	return nil
}

// owned returns the subscription of the request's delegated caller, or
// writes the error.
func (s *Sim) owned(w http.ResponseWriter, r *http.Request) (*subscription, bool) {
	ti, _, ok := s.admit(w, r)
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	sub := s.subs[r.PathValue("id")]
	s.mu.Unlock()
	if sub == nil || sub.tenant != ti.tenant || sub.clientID != ti.clientID || lower(sub.upn) != lower(ti.upn) {
		graphError(w, http.StatusNotFound, "ResourceNotFound", "The object was not found.")
		return nil, false
	}
	return sub, true
}

func (s *Sim) renewSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.owned(w, r)
	if !ok {
		return
	}
	var in struct {
		ExpirationDateTime time.Time `json:"expirationDateTime"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		s.bad(w, "Unable to read JSON request payload: "+err.Error())
		return
	}
	now := s.clock()
	if !in.ExpirationDateTime.After(now) || in.ExpirationDateTime.After(now.Add(MaxSubscriptionLifetime+time.Minute)) {
		s.bad(w, fmt.Sprintf("Subscription expiration can only be %v in the future.", MaxSubscriptionLifetime))
		return
	}
	s.mu.Lock()
	if f := s.renewFaults; f > 0 {
		s.renewFaults--
		s.mu.Unlock()
		graphError(w, http.StatusInternalServerError, "UnknownError", "An injected renewal fault.")
		return
	}
	grant := in.ExpirationDateTime
	if s.maxGrant > 0 && grant.After(now.Add(s.maxGrant)) {
		grant = now.Add(s.maxGrant)
	}
	sub.expires = grant.UTC()
	s.stats.SubscriptionsRenewed++
	out := sub.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.owned(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.subs, sub.id)
	s.stats.SubscriptionsDeleted++
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) reauthorizeSubscription(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.owned(w, r); !ok {
		return
	}
	s.count(func(st *Stats) { st.Reauthorized++ })
	w.WriteHeader(http.StatusNoContent)
}

// Subscriptions returns the live subscriptions of a tenant.
func (s *Sim) Subscriptions(tenantID string) []SubscriptionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SubscriptionInfo
	now := s.clock()
	for _, sub := range s.subs {
		if sub.tenant != tenantID || !sub.expires.After(now) {
			continue
		}
		info := SubscriptionInfo{ID: sub.id, Tenant: sub.tenant, UPN: sub.upn, ClientState: sub.clientState, ExpiresAt: sub.expires}
		for u := range sub.users {
			info.Users = append(info.Users, u)
		}
		out = append(out, info)
	}
	return out
}

// SetSubscriptionGrant makes the simulator grant at most d of expiry
// (Graph may grant less than asked); 0 grants what is asked.
func (s *Sim) SetSubscriptionGrant(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxGrant = d
}

// SetNotificationDelay sets the delay between a presence change and its
// notification (default 0.5 to 1.5 s, uniform).
func (s *Sim) SetNotificationDelay(lo, hi time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notifyLo, s.notifyHi = lo, hi
}

// FailRenewals makes the next n renewals fail with 500.
func (s *Sim) FailRenewals(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renewFaults = n
}

// notifyChanged schedules a change notification of u for every live
// subscription covering it. Callers hold s.mu.
func (s *Sim) notifyChanged(t *tenant, u *user) {
	now := s.clock()
	for _, sub := range s.subs {
		if sub.tenant != t.id || !sub.users[lower(u.id)] || !sub.expires.After(now) {
			continue
		}
		delay := s.notifyLo
		if s.notifyHi > s.notifyLo {
			delay += time.Duration(s.rng.Int64N(int64(s.notifyHi - s.notifyLo)))
		}
		p := u.presence()
		resource, _ := json.Marshal(map[string]any{"@odata.type": "#Microsoft.Graph.presence", "id": p.ID, "availability": p.Availability,
			"activity": p.Activity, "outOfOfficeSettings": p.OutOfOfficeSettings})
		sub := *sub
		s.stats.NotificationsScheduled++
		id := u.id
		time.AfterFunc(delay, func() { s.sendChange(&sub, id, resource) })
	}
}

func (s *Sim) sendChange(sub *subscription, userID string, resource []byte) {
	content, err := richnotify.Encrypt(sub.cert, sub.certID, resource)
	if err != nil {
		s.count(func(st *Stats) { st.NotificationFailures++ })
		return
	}
	item := map[string]any{
		"id": s.newIDLocked(), "subscriptionId": sub.id, "changeType": "updated", "clientState": sub.clientState,
		"subscriptionExpirationDateTime": sub.expires, "resource": "communications/presences('" + userID + "')", "tenantId": sub.tenant,
		"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.presence"}, "encryptedContent": content,
	}
	s.post(sub.notificationURL, item, func(st *Stats) { st.NotificationsSent++ })
}

// SendLifecycle sends a lifecycle notification (reauthorizationRequired,
// subscriptionRemoved, missed) of a subscription now; subscriptionRemoved
// also removes it, as Graph does.
func (s *Sim) SendLifecycle(subscriptionID, event string) error {
	s.mu.Lock()
	sub := s.subs[subscriptionID]
	if sub == nil {
		s.mu.Unlock()
		return fmt.Errorf("graphsim: no subscription %s", subscriptionID)
	}
	c := *sub
	if event == "subscriptionRemoved" {
		delete(s.subs, subscriptionID)
	}
	s.mu.Unlock()
	target := c.lifecycleURL
	if target == "" {
		target = c.notificationURL
	}
	item := map[string]any{"subscriptionId": c.id, "lifecycleEvent": event, "clientState": c.clientState, "tenantId": c.tenant,
		"resource": c.resource, "subscriptionExpirationDateTime": c.expires}
	if !s.post(target, item, func(st *Stats) { st.LifecycleSent++ }) {
		return fmt.Errorf("graphsim: the lifecycle notification was not accepted")
	}
	return nil
}

// post delivers one notification collection and reports whether the
// subscriber answered 2xx.
func (s *Sim) post(target string, item map[string]any, ok func(*Stats)) bool {
	body, _ := json.Marshal(map[string]any{"value": []any{item}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.notifyClient.Do(req)
	if err != nil {
		s.count(func(st *Stats) { st.NotificationFailures++ })
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.count(func(st *Stats) { st.NotificationFailures++ })
		return false
	}
	s.count(ok)
	return true
}

// SetClock makes the subscription rules (expiry limits, grants) follow
// now instead of the wall clock, for tests with a fake clock.
func (s *Sim) SetClock(now func() time.Time) {
	s.now.Store(&now)
}

func (s *Sim) clock() time.Time {
	if f := s.now.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

func (s *Sim) newIDLocked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newID()
}
