package settings

// ACS connection strings: the endpoints a patch may store, and the check
// that a stored string can issue a token (main gives the checker).

import (
	"context"
	"errors"
	"strings"

	"switchboard/handler/switchboard"
)

// ACSChecker verifies an ACS connection string; main gives the service
// the ACS adapter's client (*acs.Client).
type ACSChecker interface {
	// Check returns nil when the connection string can issue a token, an
	// error whose code and problem type say why not otherwise.
	Check(ctx context.Context, connString string) error
}

// ACS check targets: whose stored connection string to check.
const (
	TargetInteract  = switchboard.ACSTargetInteract
	TargetAssistant = switchboard.ACSTargetAssistant
)

// ACSCheckRequest and ACSCheckResult are the ACS check's question and
// answer.
type (
	ACSCheckRequest = switchboard.ACSCheckRequest
	ACSCheckResult  = switchboard.ACSCheckResult
)

// CheckACS checks an ACS connection string by having ACS issue a token. A
// check that ran returns its result, failed or not; errors are for
// requests that cannot be checked: EINVALID (field connectionString or
// target) for a malformed string, an unknown target, both or a target
// without a stored string.
func (s *Service) CheckACS(ctx context.Context, tenant string, req ACSCheckRequest) (ACSCheckResult, error) {
	const op = "settings.CheckACS"
	cs := strings.TrimSpace(req.ConnectionString)
	target := strings.TrimSpace(req.Target)
	var res ACSCheckResult
	switch {
	case cs != "" && target != "":
		return res, switchboard.FieldError(
			op,
			"target",
			"give either connectionString (to check it before storing it) or target (to check the stored one), not both",
		)
	case cs == "":
		if target == "" {
			target = TargetInteract
		}
		st, err := s.Lookup(ctx, tenant)
		if err != nil {
			return res, err
		}
		switch target {
		case TargetInteract:
			cs = st.Interact.ACSConnectionString.Reveal()
		case TargetAssistant:
			cs = st.Assistant.ACSConnectionString.Reveal()
		default:
			return res, switchboard.FieldError(
				op,
				"target",
				"target must be %s or %s (case-sensitive); got %q",
				TargetInteract,
				TargetAssistant,
				clip(target, 40),
			)
		}
		if cs == "" {
			return res, switchboard.FieldError(op, "target", "no ACS connection string is stored for %s: set %s.acsConnectionString, or send "+
				"connectionString to check one", target, target)
		}
		res.Target = target
	}
	parsed, err := switchboard.ParseACSConnectionString(cs)
	if err != nil {
		return res, err
	}
	res.Endpoint = parsed.Endpoint
	err = s.o.ACS.Check(ctx, cs)
	switch {
	case err == nil:
		res.OK = true
		res.Message = "ACS issued a VoIP token: the connection string works"
	case errors.Is(err, context.Canceled):
		return res, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	default:
		res.Reason = strings.TrimPrefix(switchboard.ErrorType(err), "acs-")
		if res.Reason == "" {
			res.Reason = "unexpected-response"
		}
		res.Message = switchboard.ErrorMessage(err)
	}
	s.o.Log.Info("acs check", "tenant", tenant, "target", res.Target, "endpoint", res.Endpoint, "ok", res.OK, "reason", res.Reason)
	return res, nil
}

// checkEndpoints refuses a connection string the patch sets whose endpoint
// the ACS endpoint rules refuse (switchboard.ACSConnectionString.CheckEndpoint).
func (s *Service) checkEndpoints(op string, p *Patch, next Settings) error {
	for field, cs := range map[string]Secret{
		"interact.acsConnectionString":  next.Interact.ACSConnectionString,
		"assistant.acsConnectionString": next.Assistant.ACSConnectionString,
	} {
		if !p.Touches(field) || !cs.IsSet() {
			continue
		}
		parsed, err := switchboard.ParseACSConnectionString(cs.Reveal())
		if err == nil {
			err = parsed.CheckEndpoint(s.o.AllowPrivateEndpoints)
		}
		if err != nil {
			e := switchboard.FieldError(op, field, "%s is not a valid ACS connection string: %s", field, switchboard.ErrorMessage(err))
			e.Type = switchboard.ErrorType(err)
			return e
		}
	}
	return nil
}
