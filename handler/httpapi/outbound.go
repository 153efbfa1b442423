package httpapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"switchboard/handler/switchboard"
)

// OutboundTasks is what the outbound routes need (package outbound's
// Service).
type OutboundTasks interface {
	// Schedule admits a task; created is false when referenceId names one
	// that exists. Returns EINVALID for a bad request, ENOTFOUND for an
	// unknown service, ELIMIT at the service's cap, EUNAVAILABLE when
	// storage or the queue failed.
	Schedule(ctx context.Context, tenant, service string, n switchboard.NewOutboundTask) (switchboard.OutboundTask, bool, error)
	// List returns a page of the service's tasks. Returns EINVALID.
	List(ctx context.Context, tenant, service string, o switchboard.OutboundListOptions) (switchboard.OutboundListPage, error)
	// Get returns a task. Returns ENOTFOUND.
	Get(ctx context.Context, tenant, service, id string) (switchboard.OutboundTask, error)
	// Cancel cancels a task that is not in progress. Returns ENOTFOUND,
	// and ECONFLICT while it is InProgress or once it has ended otherwise.
	Cancel(ctx context.Context, tenant, service, id string) (switchboard.OutboundTask, error)
	// Update changes a Scheduled or Queued task with a JSON merge patch of
	// its dueDateTimeUtc, priority, maxQueueTimeSeconds, preferredUsers
	// and context (a new due time reschedules it). Returns EINVALID naming
	// the field, ENOTFOUND, EPRECONDITION when the If-Match ETag is stale,
	// ECONFLICT once the task is InProgress or has ended, EUNAVAILABLE.
	Update(ctx context.Context, tenant, service, id string, p switchboard.OutboundTaskPatch) (switchboard.OutboundTask, error)
	// Complete ends an InProgress task with c's outcome; a completion for
	// an attempt no longer current (c.Attempt, c.IfMatch) changes nothing
	// and returns the task. Returns EINVALID for a bad outcome, note or
	// attempt, ENOTFOUND, ECONFLICT when it is not in progress.
	Complete(ctx context.Context, tenant, service, id string, c switchboard.OutboundCompletion) (switchboard.OutboundTask, error)
}

// OutboundAPI serves the outbound tasks (SPEC section 6) that Power
// Automate schedules through the custom connector in connector/.
type OutboundAPI struct {
	Tasks OutboundTasks
}

// Register adds the outbound routes to r.
func (a *OutboundAPI) Register(r *Router) {
	r.Tenant("POST /api/tenants/{t}/services/{s}/outbound-tasks", a.schedule)
	r.Tenant("GET /api/tenants/{t}/services/{s}/outbound-tasks", a.list)
	r.Tenant("GET /api/tenants/{t}/services/{s}/outbound-tasks/{id}", a.get)
	r.Tenant("DELETE /api/tenants/{t}/services/{s}/outbound-tasks/{id}", a.cancel)
	r.Tenant("PATCH /api/tenants/{t}/services/{s}/outbound-tasks/{id}", a.update)
	r.Tenant("POST /api/tenants/{t}/services/{s}/outbound-tasks/{id}/complete", a.complete)
}

// OutboundTaskRequest is the POST body. Optional fields may be absent or
// null; the connector's schema is checked against this type.
type OutboundTaskRequest struct {
	Destination         string            `json:"destination"`
	DueDateTimeUTC      *string           `json:"dueDateTimeUtc"`
	ReferenceID         *string           `json:"referenceId"`
	Priority            *int              `json:"priority"`
	MaxAttempts         *int              `json:"maxAttempts"`
	MaxQueueTimeSeconds *int              `json:"maxQueueTimeSeconds"`
	PreferredUsers      []string          `json:"preferredUsers"`
	Context             map[string]string `json:"context"`
}

// OutboundTaskAgent is the agent of a task.
type OutboundTaskAgent = switchboard.OutboundTaskAgent

// OutboundTask is a task as the API returns it (SPEC section 6), the shape
// its events carry too.
type OutboundTask = switchboard.OutboundTaskView

// OutboundTaskList is a page of the list. continuationToken (and nextLink,
// the absolute URL of the next page, which Power Automate's pagination
// follows) are null on the last page.
type OutboundTaskList struct {
	Value             []OutboundTask `json:"value"`
	ContinuationToken *string        `json:"continuationToken"`
	NextLink          *string        `json:"nextLink"`
}

// OutboundTaskCompletion is the body of complete; it may be empty. attempt
// is the task's attempts as the caller saw it (the connector sends it): a
// completion for an attempt no longer current changes nothing.
type OutboundTaskCompletion struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
	Attempt *int   `json:"attempt"`
}

func renderTask(t switchboard.OutboundTask) OutboundTask { return t.View() }

func (a *OutboundAPI) schedule(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	var body OutboundTaskRequest
	if err := DecodeJSON(r, &body); err != nil {
		return err
	}
	n := switchboard.NewOutboundTask{
		Destination:         body.Destination,
		Priority:            body.Priority,
		MaxAttempts:         body.MaxAttempts,
		MaxQueueTimeSeconds: body.MaxQueueTimeSeconds,
		PreferredUsers:      body.PreferredUsers,
		Context:             body.Context,
	}
	if body.DueDateTimeUTC != nil {
		n.DueDateTimeUTC = *body.DueDateTimeUTC
	}
	if body.ReferenceID != nil {
		n.ReferenceID = *body.ReferenceID
	}
	task, created, err := a.Tasks.Schedule(r.Context(), t, s, n)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	return writeTask(w, status, task)
}

func (a *OutboundAPI) list(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	o := switchboard.OutboundListOptions{State: q.Get("state"), Continuation: q.Get("continuationToken")}
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return switchboard.FieldError("http.list", "top", "top must be an integer between 1 and %d", switchboard.MaxOutboundListTop)
		}
		o.Top = n
	}
	page, err := a.Tasks.List(r.Context(), t, s, o)
	if err != nil {
		return err
	}
	out := OutboundTaskList{Value: make([]OutboundTask, len(page.Tasks))}
	for i, task := range page.Tasks {
		out.Value[i] = renderTask(task)
	}
	if page.Continuation != "" {
		out.ContinuationToken = &page.Continuation
		next := nextLink(r, page.Continuation)
		out.NextLink = &next
	}
	return WriteJSON(w, http.StatusOK, out)
}

// nextLink is the absolute URL of the next page: the request's URL, on
// the caller's scheme and host (BaseURL), with the new continuation token.
func nextLink(r *http.Request, token string) string {
	q := r.URL.Query()
	q.Set("continuationToken", token)
	// The function key travels in the header, never in a link; the host
	// reads "code" in any case, so every spelling goes.
	for k := range q {
		if strings.EqualFold(k, "code") {
			q.Del(k)
		}
	}
	return BaseURL(r) + (&url.URL{Path: r.URL.Path, RawQuery: q.Encode()}).String()
}

// BaseURL is the scheme and host the caller used. Behind the Functions
// host they are in X-Forwarded-Proto and X-Forwarded-Host (first value of
// each, as proxies append theirs; a host only when it is a bare
// host[:port], so a forwarded value cannot add a path, query or userinfo);
// without them, the request's own TLS state and Host header.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(firstForwarded(r.Header.Get("X-Forwarded-Proto"))); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if h := firstForwarded(r.Header.Get("X-Forwarded-Host")); h != "" && validHost(h) {
		host = h
	}
	return scheme + "://" + host
}

func firstForwarded(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost reports whether h is a bare host[:port], so that a forwarded
// value cannot add a path, query or userinfo to the link.
func validHost(h string) bool {
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.User == nil && u.Path == "" && u.RawQuery == "" && !strings.ContainsAny(h, "/?#@\\ ")
}

func taskRoute(r *http.Request) (tenant, service, id string, err error) {
	if tenant, service, err = tenantAndService(r); err != nil {
		return "", "", "", err
	}
	id = r.PathValue("id")
	if !switchboard.ValidID(id) {
		return "", "", "", &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "http", Field: "id", Message: "no outbound task " + strconv.Quote(truncateID(id))}
	}
	return tenant, service, id, nil
}

func truncateID(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func (a *OutboundAPI) get(w http.ResponseWriter, r *http.Request) error {
	t, s, id, err := taskRoute(r)
	if err != nil {
		return err
	}
	task, err := a.Tasks.Get(r.Context(), t, s, id)
	if err != nil {
		return err
	}
	return writeTask(w, http.StatusOK, task)
}

// writeTask answers with the task and its ETag, which If-Match on PATCH
// and on complete takes.
func writeTask(w http.ResponseWriter, status int, task switchboard.OutboundTask) error {
	if task.ETag != "" {
		w.Header().Set("ETag", switchboard.PublicETag(task.ETag))
	}
	return WriteJSON(w, status, renderTask(task))
}

// update applies a JSON merge patch (application/merge-patch+json or
// application/json), If-Match optional.
func (a *OutboundAPI) update(w http.ResponseWriter, r *http.Request) error {
	t, s, id, err := taskRoute(r)
	if err != nil {
		return err
	}
	body, err := readMergePatch(r)
	if err != nil {
		return err
	}
	task, err := a.Tasks.Update(r.Context(), t, s, id, switchboard.OutboundTaskPatch{Merge: body, IfMatch: ifMatchAll(r)})
	if err != nil {
		return err
	}
	return writeTask(w, http.StatusOK, task)
}

func (a *OutboundAPI) cancel(w http.ResponseWriter, r *http.Request) error {
	t, s, id, err := taskRoute(r)
	if err != nil {
		return err
	}
	task, err := a.Tasks.Cancel(r.Context(), t, s, id)
	if err != nil {
		return err
	}
	return writeTask(w, http.StatusOK, task)
}

func (a *OutboundAPI) complete(w http.ResponseWriter, r *http.Request) error {
	t, s, id, err := taskRoute(r)
	if err != nil {
		return err
	}
	var body OutboundTaskCompletion
	// An empty body means {"outcome": "Completed"}.
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); err == nil {
		r.Body = io.NopCloser(br)
		if err := DecodeJSON(r, &body); err != nil {
			return err
		}
	} else if !errors.Is(err, io.EOF) {
		return jsonError("http.DecodeJSON", err)
	}
	task, err := a.Tasks.Complete(r.Context(), t, s, id, switchboard.OutboundCompletion{
		Outcome: strings.TrimSpace(body.Outcome), Note: body.Note, Attempt: body.Attempt, IfMatch: r.Header.Get("If-Match"),
	})
	if err != nil {
		return err
	}
	return writeTask(w, http.StatusOK, task)
}
