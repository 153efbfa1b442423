// Package config reads Switchboard's settings from the environment (the
// Functions app settings) into one struct, with the defaults of SPEC
// section 7.
package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Config is every setting the handler reads. Names in comments are the
// environment variables.
type Config struct {
	Port string // FUNCTIONS_CUSTOMHANDLER_PORT (legacy FUNCTIONS_HTTPWORKER_PORT), default 8080

	TablesConnectionString string // TABLES_CONNECTION_STRING (Azurite, or a key-based account)
	TablesEndpoint         string // TABLES_ENDPOINT (used with managed identity)
	AzureClientID          string // AZURE_CLIENT_ID: the user-assigned managed identity, when there is one

	ServiceBusConnection string // ServiceBusConnection (connection string)
	ServiceBusNamespace  string // ServiceBusConnection__fullyQualifiedNamespace (managed identity)
	ServiceBusClientID   string // ServiceBusConnection__clientId
	OutboundQueue        string // OUTBOUND_QUEUE, default outbound-tasks
	PresenceQueue        string // PRESENCE_QUEUE, default presence-poll: shards fanned out by the poll
	DistributionQueue    string // DISTRIBUTION_QUEUE, default distribution: due times of the waiting lines (SPEC section 10)
	// LocalQueueURL is set by the local runner only (never in Azure): the
	// base URL of its in-process queues, used when no Service Bus is
	// configured.
	LocalQueueURL string // LOCAL_QUEUE_URL

	GraphBaseURL       string        // GRAPH_BASE_URL, default https://graph.microsoft.com/v1.0
	AuthorityHost      string        // AZURE_AUTHORITY_HOST, default https://login.microsoftonline.com/
	PresenceSchedule   string        // PRESENCE_POLL_SCHEDULE, default */30 * * * * *
	PresenceStaleAfter time.Duration // PRESENCE_STALE_AFTER, default 120s

	PresenceAppClientID      string // PRESENCE_APP_CLIENT_ID
	PresenceAppClientSecret  string // PRESENCE_APP_CLIENT_SECRET (secret)
	PresenceAccount1UPN      string // PRESENCE_ACCOUNT1_UPN
	PresenceAccount1Password string // PRESENCE_ACCOUNT1_PASSWORD (secret)
	PresenceAccount2UPN      string // PRESENCE_ACCOUNT2_UPN
	PresenceAccount2Password string // PRESENCE_ACCOUNT2_PASSWORD (secret)
	// PresenceConsentRedirectURI is put in the admin-consent URLs: one of
	// the presence app's redirect URIs, where Entra sends the admin after
	// consenting (optional: without it Entra uses the app's default).
	PresenceConsentRedirectURI string // PRESENCE_CONSENT_REDIRECT_URI

	// Presence change notifications (SPEC section 14): without the URL,
	// no subscription is made and presence is polled only.
	PresenceNotificationsURL string // PRESENCE_NOTIFICATIONS_URL: public URL of PresenceNotifications
	// PresenceNotificationsCertificate is the PEM certificate and private
	// key the notifications are encrypted for: the PEM itself, or the path
	// of a file holding it.
	PresenceNotificationsCertificate string        // PRESENCE_NOTIFICATIONS_CERTIFICATE (secret)
	PresenceReconcileEvery           time.Duration // PRESENCE_RECONCILE_EVERY, default 5m

	APIAuth     string // API_AUTH: entra (default) or none
	APIAudience string // API_AUDIENCE
	// UIClientID is the SPA app registration the web page signs in with
	// (authorization code with PKCE); empty leaves the page without
	// sign-in, which it says, unless API_AUTH is none.
	UIClientID string // UI_CLIENT_ID

	EventsQueue string // EVENTS_QUEUE, default events: deliveries of events to subscriptions
	// InteractQueue carries the Interact sessions' recovery timers.
	InteractQueue string // INTERACT_QUEUE, default interact
	// ACSConnectionString is the deployment's own Azure Communication
	// Services resource, for Assistant tokens of tenants without their own.
	ACSConnectionString string // ACS_CONNECTION_STRING (secret; a Key Vault reference)
	// AllowPrivateEndpoints (local development and tests only; refused in
	// Azure) lets tenant-chosen URLs use http and loopback or private hosts.
	AllowPrivateEndpoints bool // ALLOW_PRIVATE_ENDPOINTS
	// SecretsKey encrypts tenant secrets at rest (base64 of 32 bytes; a Key
	// Vault reference in Azure, where it is required); SecretsKeyPrevious
	// still opens what the key before it sealed.
	SecretsKey         string // SECRETS_KEY (secret)
	SecretsKeyPrevious string // SECRETS_KEY_PREVIOUS (secret)
	// InAzure is set when the handler runs in Azure (WEBSITE_INSTANCE_ID),
	// where the local-development settings are refused.
	InAzure bool
}

// Load reads the configuration through getenv and checks it.
func Load(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		Port:                     get("FUNCTIONS_CUSTOMHANDLER_PORT", get("FUNCTIONS_HTTPWORKER_PORT", "8080")),
		TablesConnectionString:   get("TABLES_CONNECTION_STRING", ""),
		TablesEndpoint:           get("TABLES_ENDPOINT", ""),
		AzureClientID:            get("AZURE_CLIENT_ID", ""),
		ServiceBusConnection:     get("ServiceBusConnection", ""),
		ServiceBusNamespace:      get("ServiceBusConnection__fullyQualifiedNamespace", ""),
		ServiceBusClientID:       get("ServiceBusConnection__clientId", ""),
		OutboundQueue:            get("OUTBOUND_QUEUE", "outbound-tasks"),
		PresenceQueue:            get("PRESENCE_QUEUE", "presence-poll"),
		DistributionQueue:        get("DISTRIBUTION_QUEUE", "distribution"),
		LocalQueueURL:            get("LOCAL_QUEUE_URL", ""),
		GraphBaseURL:             strings.TrimRight(get("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0"), "/"),
		AuthorityHost:            get("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
		PresenceSchedule:         get("PRESENCE_POLL_SCHEDULE", "*/30 * * * * *"),
		PresenceAppClientID:      get("PRESENCE_APP_CLIENT_ID", ""),
		PresenceAppClientSecret:  get("PRESENCE_APP_CLIENT_SECRET", ""),
		PresenceAccount1UPN:      get("PRESENCE_ACCOUNT1_UPN", ""),
		PresenceAccount1Password: get("PRESENCE_ACCOUNT1_PASSWORD", ""),
		PresenceAccount2UPN:      get("PRESENCE_ACCOUNT2_UPN", ""),
		PresenceAccount2Password: get("PRESENCE_ACCOUNT2_PASSWORD", ""),
		APIAuth:                  strings.ToLower(get("API_AUTH", "entra")),
		APIAudience:              get("API_AUDIENCE", ""),
		UIClientID:               get("UI_CLIENT_ID", ""),
	}
	c.PresenceConsentRedirectURI = get("PRESENCE_CONSENT_REDIRECT_URI", "")
	c.PresenceNotificationsURL = get("PRESENCE_NOTIFICATIONS_URL", "")
	c.PresenceNotificationsCertificate = get("PRESENCE_NOTIFICATIONS_CERTIFICATE", "")
	c.EventsQueue = get("EVENTS_QUEUE", "events")
	c.InteractQueue = get("INTERACT_QUEUE", "interact")
	c.ACSConnectionString = get("ACS_CONNECTION_STRING", "")
	c.SecretsKey = get("SECRETS_KEY", "")
	c.SecretsKeyPrevious = get("SECRETS_KEY_PREVIOUS", "")
	c.InAzure = get("WEBSITE_INSTANCE_ID", "") != ""
	switch v := strings.ToLower(get("ALLOW_PRIVATE_ENDPOINTS", "false")); v {
	case "true", "1":
		c.AllowPrivateEndpoints = true
	case "false", "0":
	default:
		return c, fmt.Errorf("ALLOW_PRIVATE_ENDPOINTS: %q is neither true nor false", v)
	}
	if c.InAzure && c.AllowPrivateEndpoints {
		return c, fmt.Errorf("ALLOW_PRIVATE_ENDPOINTS=true is for local development only and is refused in Azure (WEBSITE_INSTANCE_ID is set)")
	}
	if c.InAzure && strings.EqualFold(c.APIAuth, "none") {
		return c, fmt.Errorf("API_AUTH=none is for local development only and is refused in Azure (WEBSITE_INSTANCE_ID is set): set API_AUTH=entra and API_AUDIENCE")
	}
	if c.InAzure && c.SecretsKey == "" {
		return c, fmt.Errorf("SECRETS_KEY must be set in Azure: it encrypts tenant secrets at rest (a Key Vault reference)")
	}
	if !strings.HasSuffix(c.AuthorityHost, "/") {
		c.AuthorityHost += "/"
	}
	var err error
	if c.PresenceStaleAfter, err = parseDuration(get("PRESENCE_STALE_AFTER", "120s")); err != nil {
		return c, fmt.Errorf("PRESENCE_STALE_AFTER: %w", err)
	}
	if c.PresenceReconcileEvery, err = parseDuration(get("PRESENCE_RECONCILE_EVERY", "5m")); err != nil {
		return c, fmt.Errorf("PRESENCE_RECONCILE_EVERY: %w", err)
	}
	if u := c.PresenceNotificationsURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "https" && !(p.Scheme == "http" && isLoopbackHost(p.Hostname()))) {
			return c, fmt.Errorf(
				"PRESENCE_NOTIFICATIONS_URL: %q must be an absolute https URL (Graph notifies https endpoints only; http is accepted for loopback, local development)",
				u,
			)
		}
		if c.PresenceNotificationsCertificate == "" {
			return c, fmt.Errorf("PRESENCE_NOTIFICATIONS_CERTIFICATE must be set with PRESENCE_NOTIFICATIONS_URL: presence notifications carry encrypted resource data")
		}
	}
	if _, err := ParseSchedule(c.PresenceSchedule); err != nil {
		return c, fmt.Errorf("PRESENCE_POLL_SCHEDULE: %w", err)
	}
	if p, err := strconv.Atoi(c.Port); err != nil || p < 0 || p > 65535 {
		return c, fmt.Errorf("FUNCTIONS_CUSTOMHANDLER_PORT: %q is not a port number", c.Port)
	}
	if c.TablesConnectionString == "" && c.TablesEndpoint == "" {
		return c, fmt.Errorf("TABLES_CONNECTION_STRING or TABLES_ENDPOINT must be set")
	}
	for name, u := range map[string]string{"GRAPH_BASE_URL": c.GraphBaseURL, "AZURE_AUTHORITY_HOST": c.AuthorityHost} {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return c, fmt.Errorf("%s: %q is not an absolute URL", name, u)
		}
	}
	switch c.APIAuth {
	case "entra":
		if c.APIAudience == "" {
			return c, fmt.Errorf("API_AUDIENCE must be set when API_AUTH is entra")
		}
	case "none":
	default:
		return c, fmt.Errorf("API_AUTH: %q is neither entra nor none", c.APIAuth)
	}
	return c, nil
}

// PublicAuthority reports whether the authority host is Microsoft's public
// cloud login; any other host turns MSAL instance discovery off.
func (c Config) PublicAuthority() bool {
	u, err := url.Parse(c.AuthorityHost)
	return err == nil && strings.EqualFold(u.Host, "login.microsoftonline.com")
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// ParseSchedule parses a timer schedule as the Functions host reads it:
// NCRONTAB with six fields (seconds first), or five without seconds, or
// a descriptor such as @every 30s.
func ParseSchedule(schedule string) (cron.Schedule, error) {
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := p.Parse(schedule)
	if err != nil {
		return nil, fmt.Errorf("%q is not a schedule: %w", schedule, err)
	}
	return sched, nil
}

// parseDuration accepts Go durations ("120s", "2m") and plain seconds ("120").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		s = strconv.Itoa(n) + "s"
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return d, nil
}
