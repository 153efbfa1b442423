package httpapi

import (
	"context"
	"io"
	"net/http"
	"unicode/utf8"
)

// NotificationReceiver is what PresenceNotifications needs.
type NotificationReceiver interface {
	// Handle processes one POST of Graph change notifications. Returns
	// EINVALID for a body that is not a notification collection.
	Handle(ctx context.Context, body []byte) error
}

// maxNotificationBody bounds a notification POST (Graph batches up to a
// few hundred notifications of a few KB each).
const maxNotificationBody = 4 << 20

// maxValidationToken bounds the echoed validation token: Graph's are a
// few hundred characters; anything far longer is not Graph.
const maxValidationToken = 4096

// NotificationsAPI serves PresenceNotifications (SPEC section 14): the
// public endpoint Graph posts presence change and lifecycle notifications
// to. It has no token: each notification is checked against its
// subscription's clientState and its signature.
type NotificationsAPI struct {
	Receiver NotificationReceiver
}

// Register adds the route.
func (a *NotificationsAPI) Register(r *Router) {
	r.Anonymous("POST /api/presence-notifications", a.notify)
}

func (a *NotificationsAPI) notify(w http.ResponseWriter, r *http.Request) error {
	// The validation handshake: echo the (URL-decoded) token as plain text.
	if r.URL.Query().Has("validationToken") {
		token := r.URL.Query().Get("validationToken")
		if token == "" || len(token) > maxValidationToken || !utf8.ValidString(token) {
			w.WriteHeader(http.StatusBadRequest)
			return nil
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, token)
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotificationBody+1))
	if err != nil || len(body) > maxNotificationBody {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return nil
	}
	if err := a.Receiver.Handle(r.Context(), body); err != nil {
		return err // EINVALID: 400, which Graph does not send
	}
	// Accepted: what failed a check was counted and logged, never
	// refused with a 5xx that Graph would retry for hours.
	w.WriteHeader(http.StatusAccepted)
	return nil
}
