package modellab

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the API contract (docs/API.md): the HTTP layer maps
// each one to a status in a single table.
const (
	EINVALID      = "invalid_argument"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	ETOOLARGE     = "payload_too_large"
	EUNAVAILABLE  = "unavailable"
	// ERATELIMITED: the caller holds more than its share of a bound
	// (database-bound work per user); others are still served.
	ERATELIMITED = "rate_limited"
	EINTERNAL    = "internal"
	// EBADGATEWAY: an inference server refused the connection, answered
	// 5xx or sent a body that is not what the API promises.
	EBADGATEWAY = "bad_gateway"
	// EGATEWAYTIMEOUT: an inference server did not answer in time.
	EGATEWAYTIMEOUT = "gateway_timeout"
)

// Error is the one error type of the domain. Code is machine-readable, Message
// is safe to show to the client, Err is the cause, kept for logs only.
type Error struct {
	Code    string
	Message string
	// Field names the input field an EINVALID error is about ("name",
	// "events[3].model_id"), empty when it is about no single field: forms
	// put the message next to that field.
	Field string
	Err   error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error about one input field. The message
// starts with the field's name, as every validation message does.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorField returns the field of the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// WrapError returns an *Error that keeps cause for the logs.
func WrapError(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL
// for any other non-nil error: an unclassified error is a bug.
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

// ErrorMessage returns the client-safe message of err. Internal errors never
// expose their detail.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "internal error"
}
