// Package graph reads Teams presence from Microsoft Graph with
// msgraph-sdk-go and azidentity: the one place that knows Graph. It
// implements presence.Graph: delegated reads through the presence accounts
// (username and password against the customer's tenant, where they are
// guests) and application reads (client secret), and it turns every SDK
// and Entra failure into a switchboard.SourceError whose reason a tenant
// admin can act on.
//
// Only the request builders it uses are imported (communications and the
// models), not the whole GraphServiceClient: the SDK is large and the
// build cost is paid by this package alone.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"switchboard/handler/switchboard"
)

// Scope is the Graph scope every token is asked for: whatever was
// consented (delegated or application).
const Scope = "https://graph.microsoft.com/.default"

// Account is a presence account's credentials.
type Account struct {
	UPN      string
	Password string
}

// Options configures a Client.
type Options struct {
	BaseURL       string // GRAPH_BASE_URL, e.g. https://graph.microsoft.com/v1.0
	AuthorityHost string // AZURE_AUTHORITY_HOST, e.g. https://login.microsoftonline.com/
	// PublicAuthority is false for any authority but Microsoft's public
	// cloud login: MSAL's instance discovery is then turned off.
	PublicAuthority bool
	ClientID        string // PRESENCE_APP_CLIENT_ID
	ClientSecret    string // PRESENCE_APP_CLIENT_SECRET
	Accounts        [2]Account
	// HTTPClient carries both the Graph and the Entra requests; nil uses
	// a pooled client trusting the system roots (SSL_CERT_FILE).
	HTTPClient *http.Client
	// Timeout bounds one Graph request, token acquisition included
	// (default 30 s).
	Timeout time.Duration
}

// Client is a presence.Graph on Microsoft Graph.
type Client struct {
	o          Options
	base       string
	validHosts []string
	httpClient *http.Client // the Graph pipeline (kiota middlewares, no retry, no compression)
	idClient   *http.Client // azidentity's transport
	pnf        absser.ParseNodeFactory
	swf        absser.SerializationWriterFactory

	mu       sync.Mutex
	adapters map[string]*core.GraphRequestAdapterBase // by tenant and source
}

// New returns a Client. It contacts nothing until used.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not an absolute URL", o.BaseURL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	base := o.HTTPClient
	if base == nil {
		base = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	parent := base.Transport
	if parent == nil {
		parent = http.DefaultTransport
	}
	opts := core.GraphClientOptions{GraphServiceLibraryVersion: "1.103.0"}
	// The SDK's default pipeline minus two handlers: compression (a
	// gzipped body cannot be replayed after a 429) and retry (the poller
	// waits out Retry-After itself, within its deadline and budget).
	middlewares := []khttp.Middleware{
		core.NewGraphTelemetryHandler(&opts),
		khttp.NewRedirectHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
	pipeline := &http.Client{
		Transport:     khttp.NewCustomTransportWithParentTransport(errorBodies{parent}, middlewares...),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	pnf := absser.NewParseNodeFactoryRegistry()
	pnf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	swf := absser.NewSerializationWriterFactoryRegistry()
	swf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	return &Client{o: o, base: u.String(), validHosts: []string{u.Hostname()}, httpClient: pipeline, idClient: base,
		pnf: pnf, swf: swf, adapters: map[string]*core.GraphRequestAdapterBase{}}, nil
}

// adapter returns the request adapter of src in tenant, creating its
// credential on first use. Credentials cache their tokens.
func (c *Client) adapter(tenant string, src switchboard.PresenceSource) (*core.GraphRequestAdapterBase, error) {
	key := tenant + "/" + string(src)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.adapters[key]; ok {
		return a, nil
	}
	cred, err := c.credential(tenant, src)
	if err != nil {
		return nil, err
	}
	// Continuous access evaluation: the provider asks for CAE-capable
	// tokens, and the adapter answers a Graph 401 insufficient_claims
	// challenge once by asking the credential for a new token with the
	// challenge's claims (policy.TokenRequestOptions.Claims), which skips
	// the cached token; what that sign-in says (AADSTS50076 for MFA) is what
	// classify reports (TestRevokedTokenIsChallengedAndReasonReported).
	auth, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{Scope}, c.validHosts)
	if err != nil {
		return nil, err
	}
	a, err := core.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth,
		core.GraphClientOptions{GraphServiceLibraryVersion: "1.103.0"},
		c.pnf,
		c.swf,
		c.httpClient,
	)
	if err != nil {
		return nil, err
	}
	a.SetBaseUrl(c.base)
	c.adapters[key] = a
	return a, nil
}

func (c *Client) credential(tenant string, src switchboard.PresenceSource) (azcore.TokenCredential, error) {
	if c.o.ClientID == "" {
		return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceNotConfigured, Message: "the deployment has no presence app " +
			"(PRESENCE_APP_CLIENT_ID is not set)"}
	}
	client := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.o.AuthorityHost},
		Transport: c.idClient,
		Retry:     policy.RetryOptions{MaxRetries: 1},
	}
	switch src {
	case switchboard.SourceAccount1, switchboard.SourceAccount2:
		acc := c.o.Accounts[src.Account()-1]
		if acc.UPN == "" || acc.Password == "" {
			return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceNotConfigured, Message: fmt.Sprintf("presence account %d "+
				"is not configured in this deployment", src.Account())}
		}
		//lint:ignore SA1019 ROPC is how a guest presence account signs into the customer's tenant (seed 004); it cannot do MFA, which the status says.
		return azidentity.NewUsernamePasswordCredential(tenant, c.o.ClientID, acc.UPN, acc.Password, &azidentity.UsernamePasswordCredentialOptions{
			ClientOptions: client, DisableInstanceDiscovery: !c.o.PublicAuthority,
		})
	case switchboard.SourceApplication:
		if c.o.ClientSecret == "" {
			return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceNotConfigured, Message: "the deployment has no secret for " +
				"the presence app (PRESENCE_APP_CLIENT_SECRET)"}
		}
		return azidentity.NewClientSecretCredential(tenant, c.o.ClientID, c.o.ClientSecret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: client, DisableInstanceDiscovery: !c.o.PublicAuthority,
		})
	}
	return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceNotConfigured, Message: "unknown source"}
}

var errorMapping = abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}

// Presences implements presence.Graph.
func (c *Client) Presences(ctx context.Context, tenant string, src switchboard.PresenceSource, ids []string) ([]switchboard.PresenceReading, error) {
	if len(ids) == 0 || len(ids) > switchboard.MaxPresenceIDsPerCall {
		return nil, &switchboard.SourceError{
			Source:  src,
			Reason:  switchboard.SourceGraphError,
			Message: fmt.Sprintf("%d ids in one call: 1 to %d allowed", len(ids), switchboard.MaxPresenceIDsPerCall),
		}
	}
	a, err := c.adapter(tenant, src)
	if err != nil {
		return nil, classify(src, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	body := communications.NewGetPresencesByUserIdPostRequestBody()
	body.SetIds(ids)
	rb := communications.NewGetPresencesByUserIdRequestBuilder(c.base+"/communications/getPresencesByUserId", a)
	resp, err := rb.PostAsGetPresencesByUserIdPostResponse(ctx, body, nil)
	if err != nil {
		return nil, classify(src, err)
	}
	if resp == nil {
		return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError, Message: "Graph answered without a body"}
	}
	out := make([]switchboard.PresenceReading, 0, len(resp.GetValue()))
	for _, p := range resp.GetValue() {
		if p == nil || p.GetId() == nil {
			continue
		}
		r := switchboard.PresenceReading{UserID: *p.GetId(), Availability: deref(p.GetAvailability()), Activity: deref(p.GetActivity())}
		if oof := p.GetOutOfOfficeSettings(); oof != nil && oof.GetIsOutOfOffice() != nil {
			r.OutOfOffice = *oof.GetIsOutOfOffice()
		}
		if r.Availability == "" {
			r.Availability = "PresenceUnknown"
		}
		if r.Activity == "" {
			r.Activity = "PresenceUnknown"
		}
		out = append(out, r)
	}
	return out, nil
}

// User implements presence.Graph.
func (c *Client) User(ctx context.Context, tenant string, src switchboard.PresenceSource, upnOrID string) (switchboard.DirectoryUser, error) {
	a, err := c.adapter(tenant, src)
	if err != nil {
		return switchboard.DirectoryUser{}, classify(src, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	u, err := url.Parse(c.base + "/users/" + url.PathEscape(upnOrID) + "?$select=id,userPrincipalName,displayName")
	if err != nil {
		return switchboard.DirectoryUser{}, &switchboard.SourceError{Source: src, Reason: switchboard.SourceUserNotFound, Message: "not a usable user name"}
	}
	ri := abs.NewRequestInformation()
	ri.Method = abs.GET
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	res, err := a.Send(ctx, ri, models.CreateUserFromDiscriminatorValue, errorMapping)
	if err != nil {
		se := classify(src, err)
		if se.Status == http.StatusNotFound {
			se.Reason, se.Message = switchboard.SourceUserNotFound, fmt.Sprintf("no user %s in the tenant", upnOrID)
		}
		return switchboard.DirectoryUser{}, se
	}
	user, ok := res.(models.Userable)
	if !ok || user.GetId() == nil {
		return switchboard.DirectoryUser{}, &switchboard.SourceError{
			Source:  src,
			Reason:  switchboard.SourceGraphError,
			Message: "Graph answered without a user",
		}
	}
	return switchboard.DirectoryUser{ID: *user.GetId(), UserPrincipalName: deref(user.GetUserPrincipalName()), DisplayName: deref(user.GetDisplayName())}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// errorBodies makes every Graph error reply parseable: an error whose body
// is not JSON (a proxy's HTML page, an empty 503) becomes an OData error,
// so that the SDK reports its status and headers (Retry-After) instead of
// failing on the content type.
type errorBodies struct{ next http.RoundTripper }

func (e errorBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := e.next.RoundTrip(r)
	if err != nil || resp.StatusCode < 400 || strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "json") {
		return resp, err
	}
	snippet := make([]byte, 200)
	n, _ := resp.Body.Read(snippet)
	resp.Body.Close()
	msg := strings.ToValidUTF8(strings.TrimSpace(string(snippet[:n])), "")
	if msg == "" {
		msg = resp.Status
	}
	body := fmt.Sprintf(`{"error":{"code":"","message":%q}}`, msg)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Length")
	resp.Body = ioNopCloser(strings.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
