package acs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"switchboard/handler/egress"
	"switchboard/handler/switchboard"
)

// SessionScopes are the scopes of an Interact or Assistant token: chat and
// VoIP calls.
var SessionScopes = []string{"chat", "voip"}

// AccessToken is an ACS user access token (domain vocabulary).
type AccessToken = switchboard.ACSAccessToken

// CreateIdentity creates an ACS identity with a token for scopes
// (POST {endpoint}/identities, createTokenWithScopes), signed with the
// resource's access key. Errors are those of IssueToken.
func (c *Client) CreateIdentity(ctx context.Context, cs ConnectionString, scopes []string) (string, AccessToken, error) {
	const op = "acs.CreateIdentity"
	body, err := json.Marshal(map[string]any{"createTokenWithScopes": scopes})
	if err != nil {
		return "", AccessToken{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	var reply struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
		AccessToken AccessToken `json:"accessToken"`
	}
	if err := c.call(ctx, op, cs, "identities", body, &reply); err != nil {
		return "", AccessToken{}, err
	}
	if reply.Identity.ID == "" || reply.AccessToken.Token == "" {
		return "", AccessToken{}, identityError(
			op,
			TypeUnexpected,
			switchboard.EUNAVAILABLE,
			"Azure Communication Services answered without an identity and token",
		)
	}
	return reply.Identity.ID, reply.AccessToken, nil
}

// IssueToken issues a new token for an existing identity
// (POST {endpoint}/identities/{id}/:issueAccessToken). Returns ENOTFOUND
// when the identity does not exist (any more), EUNAUTHORIZED
// (TypeKeyRefused) when ACS refuses the key, EFORBIDDEN
// (TypeInsufficientRights) on 403, EUNAVAILABLE (TypeUnreachable) when ACS
// cannot be reached or fails. No message holds the key or a token.
func (c *Client) IssueToken(ctx context.Context, cs ConnectionString, identity string, scopes []string) (AccessToken, error) {
	const op = "acs.IssueToken"
	body, err := json.Marshal(map[string]any{"scopes": scopes})
	if err != nil {
		return AccessToken{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	var tok AccessToken
	if err := c.call(ctx, op, cs, "identities/"+url.PathEscape(identity)+"/:issueAccessToken", body, &tok); err != nil {
		return AccessToken{}, err
	}
	if tok.Token == "" {
		return AccessToken{}, identityError(op, TypeUnexpected, switchboard.EUNAVAILABLE, "Azure Communication Services answered without a token")
	}
	return tok, nil
}

// call POSTs body to path and decodes a 200/201 reply into out.
func (c *Client) call(ctx context.Context, op string, cs ConnectionString, path string, body []byte, out any) error {
	// The same rules as the check: an ACS host on 443, public addresses
	// only (ALLOW_PRIVATE_ENDPOINTS lifts them locally).
	if err := cs.CheckEndpoint(c.allowPrivate); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	status, reply, err := c.do(ctx, cs, http.MethodPost, path, body)
	if egress.Refused(err) {
		return identityError(
			op,
			TypeNotAllowed,
			switchboard.EINVALID,
			"the ACS endpoint resolves to a loopback, private or link-local address; it was not contacted",
		)
	}
	if err != nil {
		return identityError(op, TypeUnreachable, switchboard.EUNAVAILABLE, "Azure Communication Services could not be reached; try again later")
	}
	switch {
	case status == http.StatusOK || status == http.StatusCreated:
	case status == http.StatusUnauthorized:
		return identityError(
			op,
			TypeKeyRefused,
			switchboard.EUNAUTHORIZED,
			"Azure Communication Services refused the access key (401): the connection string's key is wrong or was regenerated; check it with acs-check",
		)
	case status == http.StatusForbidden:
		return identityError(op, TypeInsufficientRights, switchboard.EFORBIDDEN, "Azure Communication Services refused to issue a token (403)")
	case status == http.StatusNotFound:
		return identityError(op, "acs-identity-not-found", switchboard.ENOTFOUND, "the ACS identity does not exist (any more)")
	case status == http.StatusTooManyRequests || status >= 500:
		return identityError(op, TypeUnreachable, switchboard.EUNAVAILABLE, "Azure Communication Services is busy or failing (429 or 5xx); try again later")
	default:
		return identityError(op, TypeUnexpected, switchboard.EUNAVAILABLE, "Azure Communication Services refused the request ("+http.StatusText(status)+")")
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return identityError(op, TypeUnexpected, switchboard.EUNAVAILABLE, "Azure Communication Services sent a reply that is not JSON")
	}
	return nil
}

func identityError(op, typ, code, message string) error {
	return &switchboard.Error{Code: code, Op: op, Type: typ, Message: message}
}
