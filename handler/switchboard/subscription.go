package switchboard

import "time"

// PresenceSubscriptionRequest is what a Graph presence change
// subscription is created with (SPEC section 14).
type PresenceSubscriptionRequest struct {
	Resource        string // /communications/presences?$filter=id in ('...',...)
	NotificationURL string // also the lifecycleNotificationUrl
	ClientState     string
	Certificate     string // base64 DER (encryptionCertificate)
	CertificateID   string // encryptionCertificateId
	ExpiresAt       time.Time
}

// PresenceSubscription is a subscription as Graph granted it.
type PresenceSubscription struct {
	ID        string
	ExpiresAt time.Time
	Resource  string
}
