package interact

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Options configures a Service.
type Options struct {
	Tables        store.Tables
	Settings      Settings
	ACS           ACS
	Meetings      Meetings // nil: sessions answer 503 (no presence app configured)
	Conversations Conversations
	Timers        Timers
	Events        switchboard.EventOutbox // nil: no events
	Now           func() time.Time
	Log           *slog.Logger
	// Grace is how long past a due time housekeeping waits for the
	// timer's message before it acts itself (default 5 s).
	Grace time.Duration
	// DeploymentACS is the deployment's own ACS (ACS_CONNECTION_STRING),
	// for Assistant tokens of tenants without their own; "" when unset.
	DeploymentACS string
}

// Service runs the sessions and the Assistant's tokens.
type Service struct {
	o         Options
	sessions  sessions
	assistant store.Table
	// counting serialises this process's writes of a tenant's open count
	// (new and ending sessions): they would only lose races to each other;
	// other instances' writes are still caught by the count's ETag.
	counting sync.Map // tenant -> *sync.Mutex
}

// lockCount takes the tenant's count lock; call the returned func to let go.
func (s *Service) lockCount(tenant string) func() {
	m, _ := s.counting.LoadOrStore(tenant, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// New returns a Service.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Tables == nil || o.Settings == nil || o.ACS == nil || o.Conversations == nil || o.Timers == nil {
		return nil, errors.New("interact: tables, settings, ACS, conversations and timers are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.DeploymentACS != "" {
		if _, err := switchboard.ParseACSConnectionString(o.DeploymentACS); err != nil {
			return nil, fmt.Errorf("interact: ACS_CONNECTION_STRING: %s", switchboard.ErrorMessage(err))
		}
	}
	t, err := o.Tables.Table(ctx, TableName)
	if err != nil {
		return nil, err
	}
	a, err := o.Tables.Table(ctx, AssistantTableName)
	if err != nil {
		return nil, err
	}
	return &Service{o: o, sessions: sessions{t: t}, assistant: a}, nil
}

func (s *Service) now() time.Time { return s.o.Now().UTC().Round(0).Truncate(time.Millisecond) }

// Gate returns the tenant's Interact switch, widget key and authorization
// mode (a tenant without settings is not enabled).
func (s *Service) Gate(ctx context.Context, tenant string) (Gate, error) {
	st, err := s.o.Settings.Config(ctx, tenant)
	if err != nil {
		return Gate{}, err
	}
	return Gate{Enabled: st.Enabled, WidgetKey: st.WidgetKey, Authorization: st.Authorization}, nil
}

func validate(in *CreateInput) error {
	const op = "interact.Create"
	switch {
	case in.ServiceID == "" && in.UserID == "":
		return switchboard.FieldError(op, "serviceId", "give serviceId (a service's queue) or userId (a direct conversation with one agent)")
	case in.ServiceID != "" && in.UserID != "":
		return switchboard.FieldError(op, "userId", "give serviceId or userId, not both")
	case in.ServiceID != "" && !switchboard.ValidID(in.ServiceID):
		return switchboard.FieldError(op, "serviceId", "serviceId %q is not a valid id", clip(in.ServiceID))
	}
	if in.UserID != "" {
		id, ok := switchboard.NormalizeGUID(in.UserID)
		if !ok {
			return switchboard.FieldError(op, "userId", "userId %q is not an Entra object id (a GUID)", clip(in.UserID))
		}
		in.UserID = id
	}
	for name, v := range map[string]string{"customer.displayName": in.Customer.DisplayName, "customer.email": in.Customer.Email} {
		if utf8.RuneCountInString(v) > MaxCustomerField {
			return switchboard.FieldError(op, name, "%s is longer than %d characters", name, MaxCustomerField)
		}
	}
	if e := in.Customer.Email; e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " \t\r\n")) {
		return switchboard.FieldError(op, "customer.email", "customer.email is not an e-mail address")
	}
	if len(in.Context) > MaxContext {
		return switchboard.FieldError(op, "context", "at most %d context entries, not %d", MaxContext, len(in.Context))
	}
	for k, v := range in.Context {
		if k == "" || len(k) > MaxContextKey {
			return switchboard.FieldError(op, "context", "context keys are 1-%d characters", MaxContextKey)
		}
		if strings.HasPrefix(k, "interact.") {
			return switchboard.FieldError(op, "context."+k, "context keys starting with interact. are Switchboard's")
		}
		if len(v) > MaxContextValue {
			return switchboard.FieldError(op, "context."+k, "context values are at most %d characters", MaxContextValue)
		}
	}
	return nil
}

func view(s Session, conv ConversationState) View {
	v := View{SessionID: s.ID, State: s.State(), ConversationID: s.ConversationID(), RecoveryTimeoutSeconds: s.RecoverySeconds, Outcome: s.Outcome}
	if s.Phase == StateWaiting && conv.Position > 0 {
		p := conv.Position
		v.Position = &p
	}
	if s.Agent != "" && s.Phase == StateConnected {
		v.Agent = &AgentView{UserID: s.Agent}
	}
	if party, until := s.suspension(); party != "" {
		v.SuspendedParty, v.SuspendedUntil = &party, &until
	}
	if s.Phase != StateEnded {
		m := s.Meeting
		v.Meeting = &m
	}
	return v
}

func notConfigured(field, why string) error {
	return &switchboard.Error{Code: switchboard.ECONFLICT, Op: "interact.Create", Type: TypeNotConfigured, Field: field, Message: why}
}

// Create starts a session: an ACS identity and token, a Teams meeting on
// behalf of interact.o365UserId, the session stored, and its conversation
// enqueued (serviceId) or offered to the one agent (userId). Returns
// EINVALID naming the field, ECONFLICT (TypeNotConfigured, Field the
// missing setting), *RateLimited, ENOTFOUND for an unknown service, and
// the ACS and Graph errors (with their problem types).
func (s *Service) Create(ctx context.Context, tenant string, in CreateInput) (View, error) {
	const op = "interact.Create"
	if err := validate(&in); err != nil {
		return View{}, err
	}
	st, err := s.o.Settings.Config(ctx, tenant)
	if err != nil {
		return View{}, err
	}
	if st.ACSConnectionString == "" {
		return View{}, notConfigured("interact.acsConnectionString", "Interact needs an ACS connection string: set interact.acsConnectionString")
	}
	if st.O365UserID == "" {
		return View{}, notConfigured("interact.o365UserId", "Interact needs the user meetings are created for: set interact.o365UserId")
	}
	if s.o.Meetings == nil {
		return View{}, switchboard.Errorf(
			switchboard.EUNAVAILABLE,
			op,
			"this deployment has no presence app (PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET) to create Teams meetings with",
		)
	}
	cs, err := switchboard.ParseACSConnectionString(st.ACSConnectionString)
	if err != nil {
		return View{}, notConfigured("interact.acsConnectionString", "the stored interact.acsConnectionString is not usable: set it again")
	}
	// A build without waiting lines says so before an identity and a
	// meeting are made for nothing.
	if a, ok := s.o.Conversations.(interface{ Available() error }); ok {
		if err := a.Available(); err != nil {
			return View{}, err
		}
	}
	if in.UserID != "" {
		if err := s.o.Conversations.CheckDirect(ctx, tenant, in.UserID); err != nil {
			return View{}, err
		}
	}
	now := s.now()
	if _, _, err := s.admit(ctx, tenant, in.ClientAddress, now); err != nil {
		return View{}, err
	}
	acsUser, tok, err := s.o.ACS.CreateIdentity(ctx, cs, SessionScopes)
	if err != nil {
		return View{}, err
	}
	subject := "Interact"
	if in.Customer.DisplayName != "" {
		subject += ": " + in.Customer.DisplayName
	}
	meeting, err := s.o.Meetings.CreateMeeting(ctx, tenant, st.O365UserID, subject, now, MeetingLength)
	if err != nil {
		return View{}, err
	}
	resume := randomToken()
	sess := Session{
		TenantID: tenant, ID: uuid.NewString(), ServiceID: in.ServiceID, Direct: in.UserID,
		Customer: in.Customer, Context: in.Context, Phase: StateWaiting,
		RecoverySeconds: st.RecoverySeconds, ACSEndpoint: cs.Endpoint, ACSUser: acsUser,
		Meeting: meeting, ResumeHash: hashToken(resume), CreatedAt: now,
	}
	if err := s.insert(ctx, sess, in.ClientAddress, now); err != nil {
		return View{}, err
	}
	// Stored: a caller gone now must not leave a session without its
	// conversation (it would count against the tenant's limit).
	ctx = context.WithoutCancel(ctx)
	convContext := maps.Clone(in.Context)
	if convContext == nil {
		convContext = map[string]string{}
	}
	convContext[ContextSessionID], convContext[ContextMeetingJoin], convContext[ContextACSUser] = sess.ID, meeting.JoinURL, acsUser
	nc := NewConversation{ID: sess.ConversationID(), Customer: in.Customer, Context: convContext}
	var conv ConversationState
	if in.ServiceID != "" {
		conv, err = s.o.Conversations.Enqueue(ctx, tenant, in.ServiceID, nc)
	} else {
		conv, err = s.o.Conversations.OfferDirect(ctx, tenant, in.UserID, nc)
	}
	if err != nil {
		s.remove(ctx, sess)
		return View{}, err
	}
	if cur, err := s.load(ctx, tenant, sess.ID); err == nil {
		sess, conv = cur.s, cur.conv
	}
	s.o.Log.Info("interact session created", "tenant", tenant, "session", sess.ID, "service", in.ServiceID, "direct", in.UserID != "", "state", sess.State())
	v := view(sess, conv)
	v.ResumeToken = resume
	v.ACS = &ACSView{Endpoint: cs.Endpoint, UserID: acsUser, Token: tok.Token, ExpiresOn: tok.ExpiresOn}
	m := meeting
	v.Meeting = &m
	return v, nil
}

// admit checks both limits and returns the counters it read.
func (s *Service) admit(ctx context.Context, tenant, addr string, now time.Time) (open, rate counter, err error) {
	if open, err = s.sessions.counter(ctx, tenant, openRow); err != nil {
		return
	}
	if open.n >= MaxOpenSessions {
		return open, rate, &RateLimited{
			RetryAfter: 30 * time.Second,
			Message:    fmt.Sprintf("this tenant has %d open Interact sessions, the most it may have; try again later", MaxOpenSessions),
		}
	}
	if rate, err = s.sessions.counter(ctx, tenant, rateRow(addr, now)); err != nil {
		return
	}
	if rate.n >= MaxNewPerMinute {
		next := time.Unix((now.Unix()/60+1)*60, 0)
		return open, rate, &RateLimited{
			RetryAfter: max(next.Sub(now), time.Second),
			Message:    fmt.Sprintf("at most %d new sessions per minute from one address; try again later", MaxNewPerMinute),
		}
	}
	return open, rate, nil
}

// insert stores a new session with the open count and the address's rate
// in one batch, the limits checked again under their ETags.
func (s *Service) insert(ctx context.Context, sess Session, addr string, now time.Time) error {
	events, err := s.eventOps(nil, &sess)
	if err != nil {
		return err
	}
	e, err := sess.entity()
	if err != nil {
		return switchboard.Wrap(switchboard.EINTERNAL, "interact.insert", err)
	}
	defer s.lockCount(sess.TenantID)()
	for attempt := 0; ; attempt++ {
		open, rate, err := s.admit(ctx, sess.TenantID, addr, now)
		if err != nil {
			return err
		}
		err = s.batch(ctx, sess.TenantID, []store.Op{
			{Kind: store.OpInsert, Entity: e},
			counterOp(sess.TenantID, openRow, open, open.n+1, nil),
			counterOp(sess.TenantID, rateRow(addr, now), rate, rate.n+1, map[string]any{"At": now}),
		}, events)
		if !retrying(err) {
			return err
		}
		// Sessions started at once race for the tenant's count: each
		// loser reads it again after a random pause, so they spread out.
		if attempt == maxInsertAttempts {
			return switchboard.Errorf(switchboard.EUNAVAILABLE, "interact.Create", "too many sessions are being started at once in this tenant; try again")
		}
		if err := sleep(ctx, time.Duration(mrand.Int64N(int64(min(attempt+1, 20))*int64(5*time.Millisecond)))); err != nil {
			return err
		}
	}
}

// backoff pauses a writer that lost a race (at random, longer with each
// attempt) and gives up with EUNAVAILABLE after maxInsertAttempts.
func (s *Service) backoff(ctx context.Context, attempt int) error {
	if attempt >= maxInsertAttempts {
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "interact", "the session keeps changing under concurrent writers; try again")
	}
	return sleep(ctx, time.Duration(mrand.Int64N(int64(min(attempt+1, 20))*int64(5*time.Millisecond))))
}

// maxInsertAttempts bounds the retries of a new session's batch.
const maxInsertAttempts = 40

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// remove undoes insert when the conversation could not be started.
func (s *Service) remove(ctx context.Context, sess Session) {
	defer s.lockCount(sess.TenantID)()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		open, err := s.sessions.counter(ctx, sess.TenantID, openRow)
		if err != nil {
			break
		}
		err = s.sessions.t.Batch(ctx, []store.Op{
			{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: sess.TenantID, RowKey: sessionRow + sess.ID}},
			counterOp(sess.TenantID, openRow, open, max(open.n-1, 0), nil),
		})
		if err == nil || !retrying(err) {
			if err != nil {
				s.o.Log.Error("interact: a session whose conversation failed could not be removed", "tenant", sess.TenantID, "session", sess.ID, "err", err)
			}
			return
		}
	}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("interact: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is the stored form of a resume token: 256 random bits need no
// slow hash.
func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// invalidResume is the one answer to an unknown session, a wrong token and
// a session past its retention: it reveals nothing.
func invalidResume() error {
	return &switchboard.Error{
		Code:    switchboard.EUNAUTHORIZED,
		Op:      "interact",
		Type:    TypeInvalidResume,
		Message: "the session id or the resume token is not valid",
	}
}

func sessionEnded(s Session) error {
	return &switchboard.Error{Code: switchboard.EGONE, Op: "interact", Type: TypeSessionEnded, Message: "the session has ended (" + s.Outcome + ")"}
}

// loaded is a session brought up to date, with its conversation's state.
type loaded struct {
	s    Session
	conv ConversationState
}

// load reads a session and brings it up to date: a pending change of its
// conversation made, the conversation's progress taken over (an agent
// accepted; it ended elsewhere), and a recovery time that has run out
// applied (the timer's message may be late).
func (s *Service) load(ctx context.Context, tenant, id string) (loaded, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.sessions.get(ctx, tenant, id)
		if err != nil {
			return loaded{}, err
		}
		if cur.Pending != "" {
			if cur, err = s.finish(ctx, cur); err != nil {
				return loaded{}, err
			}
		}
		next, conv, err := s.sync(ctx, cur)
		if err != nil {
			return loaded{}, err
		}
		if next.equal(cur) {
			return loaded{cur, conv}, nil
		}
		saved, err := s.save(ctx, cur, next)
		if retrying(err) {
			if err := s.backoff(ctx, attempt); err != nil {
				return loaded{}, err
			}
			continue
		}
		if err != nil {
			return loaded{}, err
		}
		if saved.Pending != "" {
			saved, _ = s.finish(ctx, saved)
		}
		return loaded{saved, conv}, nil
	}
}

// sync returns the session as its conversation and the clock say it is.
func (s *Service) sync(ctx context.Context, cur Session) (Session, ConversationState, error) {
	next := cur.clone()
	var conv ConversationState
	if cur.Phase == StateEnded {
		return next, conv, nil
	}
	conv, err := s.o.Conversations.State(ctx, cur.TenantID, cur.ConversationID())
	switch {
	case switchboard.IsCode(err, switchboard.ENOTFOUND):
		// Gone from distribution (its retention): nothing left to join.
		next.end(s.now(), "conversationGone", "")
		return next, conv, nil
	case err != nil:
		return cur, conv, err
	}
	switch {
	case conv.Final():
		next.end(s.now(), conv.State, "")
	case conv.State == ConvConnected && (cur.Phase == StateWaiting || conv.Agent != cur.Agent):
		next.Phase, next.Agent, next.AgentAwayUntil = StateConnected, conv.Agent, time.Time{}
	case conv.Waiting() && cur.Phase == StateConnected:
		// Put back in the queue by distribution itself.
		next.Phase, next.Agent, next.AgentAwayUntil = StateWaiting, "", time.Time{}
	}
	expire(&next, s.now())
	return next, conv, nil
}

// expire applies recovery times that have run out: the customer gone ends
// the session; the agent gone ends a direct session and puts a service
// session's conversation back in its queue.
func expire(s *Session, now time.Time) {
	if s.Phase == StateEnded {
		return
	}
	if !s.CustomerAwayUntil.IsZero() && !now.Before(s.CustomerAwayUntil) {
		s.end(now, "customerLeft", pendingEnd)
		return
	}
	if !s.AgentAwayUntil.IsZero() && !now.Before(s.AgentAwayUntil) {
		if s.Direct != "" {
			s.end(now, "agentLeft", pendingEnd)
			return
		}
		s.Phase, s.Agent, s.AgentAwayUntil, s.Pending = StateWaiting, "", time.Time{}, pendingQueue
	}
}

func (s *Session) end(now time.Time, outcome, pending string) {
	s.Phase, s.EndedAt, s.Outcome, s.Pending = StateEnded, now, outcome, pending
	s.CustomerAwayUntil, s.AgentAwayUntil = time.Time{}, time.Time{}
}

func (s Session) clone() Session {
	c := s
	c.Context = maps.Clone(s.Context)
	return c
}

func (s Session) equal(o Session) bool {
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// save writes next over cur (conditional on cur's ETag); a session that
// ends gives its place in the open count back in the same batch. It
// schedules the recovery timer when next has a new due time.
func (s *Service) save(ctx context.Context, cur, next Session) (Session, error) {
	events, err := s.eventOps(&cur, &next)
	if err != nil {
		return cur, err
	}
	e, err := next.entity()
	if err != nil {
		return cur, switchboard.Wrap(switchboard.EINTERNAL, "interact.save", err)
	}
	ops := []store.Op{{Kind: store.OpUpdate, Entity: e, IfMatch: cur.etag}}
	ended := cur.Phase != StateEnded && next.Phase == StateEnded
	if ended {
		defer s.lockCount(cur.TenantID)()
		open, err := s.sessions.counter(ctx, cur.TenantID, openRow)
		if err != nil {
			return cur, err
		}
		ops = append(ops, counterOp(cur.TenantID, openRow, open, max(open.n-1, 0), nil))
	}
	if len(ops) == 1 && len(events) == 0 {
		if next.etag, err = s.sessions.t.Update(ctx, e, cur.etag); err != nil {
			return cur, err
		}
	} else {
		if err := s.batch(ctx, cur.TenantID, ops, events); err != nil {
			return cur, err
		}
		// A batch does not return ETags: read the row back.
		got, err := s.sessions.get(ctx, cur.TenantID, cur.ID)
		if err != nil {
			return cur, err
		}
		next = got
	}
	if ended {
		s.o.Log.Info("interact session ended", "tenant", cur.TenantID, "session", cur.ID, "outcome", next.Outcome)
		return next, nil
	}
	if due := next.nextDue(); !due.IsZero() && !due.Equal(cur.nextDue()) {
		s.schedule(ctx, next, due)
	}
	return next, nil
}

// timerMessage is the recovery timer's message body.
type timerMessage struct {
	Tenant  string    `json:"tenant"`
	Session string    `json:"sessionId"`
	Due     time.Time `json:"due"`
}

func (s *Service) schedule(ctx context.Context, sess Session, due time.Time) {
	body, _ := json.Marshal(timerMessage{Tenant: sess.TenantID, Session: sess.ID, Due: due})
	if err := s.o.Timers.Schedule(ctx, due, body); err != nil {
		// Housekeeping acts on the due time within a minute.
		s.o.Log.Error(
			"interact: the recovery timer could not be scheduled; housekeeping will act",
			"tenant",
			sess.TenantID,
			"session",
			sess.ID,
			"due",
			due,
			"err",
			err,
		)
	}
}

// finish makes the conversation change a session has decided (end or
// requeue) and clears the mark.
func (s *Service) finish(ctx context.Context, cur Session) (Session, error) {
	var err error
	switch cur.Pending {
	case pendingEnd:
		err = s.o.Conversations.End(ctx, cur.TenantID, cur.ConversationID())
	case pendingQueue:
		_, err = s.o.Conversations.Requeue(ctx, cur.TenantID, cur.ConversationID())
	}
	if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return cur, err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		next := cur.clone()
		next.Pending = ""
		saved, err := s.save(ctx, cur, next)
		if err == nil {
			return saved, nil
		}
		if !retrying(err) {
			return cur, err
		}
		if cur, err = s.sessions.get(ctx, cur.TenantID, cur.ID); err != nil {
			return cur, err
		}
		if cur.Pending == "" {
			return cur, nil
		}
	}
	return cur, switchboard.Errorf(switchboard.EUNAVAILABLE, "interact.finish", "session %s changes too often", cur.ID)
}

// errUnchanged tells mutate that fn left the session as it was.
var errUnchanged = errors.New("unchanged")

// mutate loads a session, lets fn change it and writes it, retrying when a
// concurrent change won; the side effects (timer, conversation) follow the
// write.
func (s *Service) mutate(ctx context.Context, tenant, id string, fn func(s *Session, now time.Time) error) (loaded, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.load(ctx, tenant, id)
		if err != nil {
			return loaded{}, err
		}
		next := cur.s.clone()
		if err := fn(&next, s.now()); errors.Is(err, errUnchanged) {
			return cur, nil
		} else if err != nil {
			return cur, err
		}
		saved, err := s.save(ctx, cur.s, next)
		if retrying(err) {
			if err := s.backoff(ctx, attempt); err != nil {
				return loaded{}, err
			}
			continue
		}
		if err != nil {
			return loaded{}, err
		}
		if saved.Pending != "" {
			if saved, err = s.finish(ctx, saved); err != nil {
				return loaded{}, err
			}
		}
		return loaded{saved, cur.conv}, nil
	}
}

// customer loads a session for its customer: the resume token must match.
func (s *Service) customer(ctx context.Context, tenant, id, resumeToken string) (loaded, error) {
	if !validSessionID(id) || resumeToken == "" {
		return loaded{}, invalidResume()
	}
	raw, err := s.sessions.get(ctx, tenant, id)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return loaded{}, invalidResume()
	}
	if err != nil {
		return loaded{}, err
	}
	want, _ := hex.DecodeString(raw.ResumeHash)
	got := sha256.Sum256([]byte(resumeToken))
	if subtle.ConstantTimeCompare(got[:], want) != 1 || s.expired(raw) {
		return loaded{}, invalidResume()
	}
	return s.load(ctx, tenant, id)
}

func (s *Service) expired(sess Session) bool {
	return sess.Phase == StateEnded && s.now().Sub(sess.EndedAt) > EndedRetention
}

func validSessionID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// customerChange is a change by the session's customer, once the resume
// token matched.
func (s *Service) customerChange(ctx context.Context, tenant, id, resumeToken string, fn func(sess *Session, now time.Time) error) (loaded, error) {
	if _, err := s.customer(ctx, tenant, id, resumeToken); err != nil {
		return loaded{}, err
	}
	return s.mutate(ctx, tenant, id, fn)
}

// Get returns the session for its customer. Returns EUNAUTHORIZED
// (TypeInvalidResume) for an unknown session or a wrong resume token,
// without saying which.
func (s *Service) Get(ctx context.Context, tenant, id, resumeToken string) (View, error) {
	l, err := s.customer(ctx, tenant, id, resumeToken)
	if err != nil {
		return View{}, err
	}
	return view(l.s, l.conv), nil
}

// Leave records that the customer left: the session is Suspended for the
// recovery time. Returns EGONE (TypeSessionEnded) for an ended session.
func (s *Service) Leave(ctx context.Context, tenant, id, resumeToken string) (View, error) {
	l, err := s.customerChange(ctx, tenant, id, resumeToken, func(sess *Session, now time.Time) error {
		switch {
		case sess.Phase == StateEnded:
			return sessionEnded(*sess)
		case !sess.CustomerAwayUntil.IsZero():
			return errUnchanged
		}
		sess.CustomerAwayUntil = now.Add(time.Duration(sess.RecoverySeconds) * time.Second)
		return nil
	})
	if err != nil {
		return View{}, err
	}
	return view(l.s, l.conv), nil
}

// Rejoin brings the customer back within the recovery time: the same
// session, agent and meeting, with a fresh token for the same ACS
// identity. Returns EGONE (TypeSessionEnded) once the time has run out.
func (s *Service) Rejoin(ctx context.Context, tenant, id, resumeToken string) (View, error) {
	l, err := s.customerChange(ctx, tenant, id, resumeToken, func(sess *Session, now time.Time) error {
		switch {
		case sess.Phase == StateEnded:
			return sessionEnded(*sess)
		case sess.CustomerAwayUntil.IsZero():
			return errUnchanged // a reload without a leave: a fresh token only
		}
		sess.CustomerAwayUntil = time.Time{}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	tok, err := s.token(ctx, tenant, l.s)
	if err != nil {
		return View{}, err
	}
	v := view(l.s, l.conv)
	v.ACS = &ACSView{Endpoint: l.s.ACSEndpoint, UserID: l.s.ACSUser, Token: tok.Token, ExpiresOn: tok.ExpiresOn}
	return v, nil
}

// token issues a fresh token for the session's ACS identity, with the
// tenant's current connection string for the session's endpoint.
func (s *Service) token(ctx context.Context, tenant string, sess Session) (AccessToken, error) {
	st, err := s.o.Settings.Config(ctx, tenant)
	if err != nil {
		return AccessToken{}, err
	}
	cs, err := switchboard.ParseACSConnectionString(st.ACSConnectionString)
	if err != nil || cs.Endpoint != sess.ACSEndpoint {
		return AccessToken{}, notConfigured(
			"interact.acsConnectionString",
			"interact.acsConnectionString no longer names the ACS resource this session's identity belongs to",
		)
	}
	return s.o.ACS.IssueToken(ctx, cs, sess.ACSUser, SessionScopes)
}

func (s *Service) agent(ctx context.Context, c AgentCall, fn func(sess *Session, now time.Time) error) (View, error) {
	if !validSessionID(c.Session) {
		return View{}, switchboard.Errorf(switchboard.ENOTFOUND, "interact", "no session %s", clip(c.Session))
	}
	l, err := s.mutate(ctx, c.Tenant, c.Session, func(sess *Session, now time.Time) error {
		if c.AsAgent != "" && !strings.EqualFold(c.AsAgent, sess.Agent) {
			return switchboard.Errorf(switchboard.EFORBIDDEN, "interact", "only the session's agent may do this")
		}
		return fn(sess, now)
	})
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return View{}, switchboard.Errorf(switchboard.ENOTFOUND, "interact", "no session %s", c.Session)
	}
	if err != nil {
		return View{}, err
	}
	return view(l.s, l.conv), nil
}

func noAgent(sess Session) error {
	return &switchboard.Error{Code: switchboard.ECONFLICT, Op: "interact", Type: TypeNoAgent, Message: "the session has no agent yet (" + sess.State() + ")"}
}

// AgentLeft records that the agent left: Suspended for the recovery time.
// Returns ECONFLICT (TypeNoAgent) before an agent joined, EGONE once ended.
func (s *Service) AgentLeft(ctx context.Context, c AgentCall) (View, error) {
	return s.agent(ctx, c, func(sess *Session, now time.Time) error {
		switch {
		case sess.Phase == StateEnded:
			return sessionEnded(*sess)
		case sess.Phase != StateConnected:
			return noAgent(*sess)
		case !sess.AgentAwayUntil.IsZero():
			return errUnchanged
		}
		sess.AgentAwayUntil = now.Add(time.Duration(sess.RecoverySeconds) * time.Second)
		return nil
	})
}

// AgentRejoined brings the agent back within the recovery time.
func (s *Service) AgentRejoined(ctx context.Context, c AgentCall) (View, error) {
	return s.agent(ctx, c, func(sess *Session, now time.Time) error {
		switch {
		case sess.Phase == StateEnded:
			return sessionEnded(*sess)
		case sess.Phase != StateConnected:
			return noAgent(*sess)
		case sess.AgentAwayUntil.IsZero():
			return errUnchanged
		}
		sess.AgentAwayUntil = time.Time{}
		return nil
	})
}

// End ends the session from the agent's side: the agent is released
// (after-call work). An ended session is returned as it is.
func (s *Service) End(ctx context.Context, c AgentCall) (View, error) {
	return s.agent(ctx, c, func(sess *Session, now time.Time) error {
		if sess.Phase == StateEnded {
			return errUnchanged
		}
		sess.end(now, "ended", pendingEnd)
		return nil
	})
}

// HandleTimer acts on a recovery timer's message. A message for a session
// that moved on (the party came back, it ended) changes nothing; one that
// came early is scheduled again. A malformed message is dropped (nil).
func (s *Service) HandleTimer(ctx context.Context, body []byte) (string, error) {
	var m timerMessage
	if err := json.Unmarshal(body, &m); err != nil || m.Tenant == "" || !validSessionID(m.Session) {
		return "dropped: not a recovery timer message", nil
	}
	l, err := s.load(ctx, m.Tenant, m.Session)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return "dropped: no such session", nil
	}
	if err != nil {
		return "", err
	}
	if due := l.s.nextDue(); !due.IsZero() && due.Equal(m.Due) && s.now().Before(due) {
		s.schedule(ctx, l.s, due)
		return "early: scheduled again", nil
	}
	return "session " + l.s.State(), nil
}
