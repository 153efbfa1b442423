// Package switchboard holds the domain types of Switchboard and the small
// interfaces that serve them. It knows nothing of Azure, HTTP or Graph:
// adapters live in packages named after their technology, and main wires
// them together.
package switchboard

import (
	"errors"
	"fmt"
)

// Error codes. Callers branch on the code, never on the message text; only
// the HTTP layer maps codes to statuses.
const (
	EINVALID      = "invalid"       // the caller sent something malformed or out of range
	ENOTFOUND     = "not_found"     // the thing asked for does not exist
	ECONFLICT     = "conflict"      // the thing exists already, or its state forbids the operation
	EPRECONDITION = "precondition"  // an ETag (If-Match) no longer matches
	ELIMIT        = "limit_reached" // a configured cap would be exceeded
	EUNAUTHORIZED = "unauthorized"  // no valid credentials
	EFORBIDDEN    = "forbidden"     // valid credentials, but not for this
	EUNAVAILABLE  = "unavailable"   // a dependency failed in a way worth retrying
	EINTERNAL     = "internal"      // a bug or an unexpected failure
)

// Error is the one error type of the domain. Op names the operation that
// failed ("settings.Patch"), Field the offending input field where there is
// one (dotted JSON path), Type a stable machine-readable problem type for
// the API ("outbound-task-limit-reached"); all but Code are optional.
type Error struct {
	Code    string
	Op      string
	Field   string
	Type    string
	Message string
	// Detail adds what another system said (Graph's message for a refused
	// filter): the API shows it as the problem's detail.
	Detail string
	Err    error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		// A wrapped SDK error may quote a request URL with its secrets.
		msg = RedactURLs(e.Err.Error())
	}
	if msg == "" {
		msg = e.Code
	}
	if e.Op != "" {
		return e.Op + ": " + msg
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with the given code and a formatted message.
func Errorf(code, op, format string, args ...any) *Error {
	return &Error{Code: code, Op: op, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an EINVALID error naming the offending field.
func FieldError(op, field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Op: op, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns err as an Error of the given code, keeping it as the cause.
// An err that already is an Error keeps its own code; Op is added if missing.
func Wrap(code, op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Op == "" {
			c := *e
			c.Op = op
			return &c
		}
		return err
	}
	return &Error{Code: code, Op: op, Err: err}
}

// ErrorCode returns the code of the first Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }

// ErrorMessage returns the human-readable message of err, without the
// operation prefix, for use in API responses. Internal errors get a generic
// message so that no detail (or secret) of a failure leaks to a caller.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		if e.Message != "" {
			return e.Message
		}
		if e.Err != nil {
			return RedactURLs(e.Err.Error())
		}
	}
	return "an internal error occurred"
}

// ErrorField returns the offending field of err, if it names one.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorType returns the problem type of err, if it sets one.
func ErrorType(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Type
	}
	return ""
}

// ErrorDetail returns the detail of err, if it carries one.
func ErrorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Detail
	}
	return ""
}
