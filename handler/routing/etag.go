package routing

import "switchboard/handler/switchboard"

// publicETag is the service's ETag as the API shows it (strong; see
// switchboard.PublicETag).
func publicETag(stored string) string { return switchboard.PublicETag(stored) }

// publicService returns svc with its public ETag.
func publicService(svc Service) Service {
	svc.ETag = publicETag(svc.ETag)
	return svc
}

// ifMatchHolds is switchboard.IfMatchHolds: the strong comparison of RFC
// 9110 section 13.1.1.
func ifMatchHolds(header, stored string) bool { return switchboard.IfMatchHolds(header, stored) }
