// The Function App on the Flex Consumption plan, running the Go custom
// handler (runtime 'custom'), deployed by azd as a zip into the deployment
// container and authenticated everywhere with the user-assigned identity.
param name string
param planName string
param location string
param tags object = {}

param identityId string
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
@description('Host name of the Service Bus namespace (servicebus.bicep\'s fullyQualifiedNamespace, from the namespace\'s serviceBusEndpoint).')
param serviceBusNamespaceHost string
param keyVaultName string

@description('App setting name to queue name, e.g. {OUTBOUND_QUEUE: \'outbound-tasks\'}.')
param queueSettings object

@description('Which secrets main.bicep stored in Key Vault: {presenceAppClientSecret, presenceAccount1Password, presenceAccount2Password, secretsKeyPrevious} as booleans.')
param storedSecrets object

param presenceAppClientId string
param presenceAccount1Upn string
param presenceAccount2Upn string
param presenceConsentRedirectUri string
param apiAudience string

@description('Client id of the web page\'s SPA app registration (UI_CLIENT_ID).')
param uiClientId string
param graphBaseUrl string
param authorityHost string
param presencePollSchedule string
param presenceStaleAfter string
@description('Name of the Key Vault certificate (PEM content type) Graph encrypts presence notifications for; empty: no notifications, polling only.')
param presenceNotificationsCertificateName string
param presenceReconcileEvery string

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int
param instanceMemoryMB int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// A Key Vault reference, resolved by the platform with the identity named in
// keyVaultReferenceIdentity.
func secretRef(vault string, secret string) string => '@Microsoft.KeyVault(VaultName=${vault};SecretName=${secret})'

// Every setting the handler reads (SPEC section 7, handler/config) and every
// setting its bindings use. A test compares this object with the names the
// handler reads and the connections and %settings% the function.json files
// use. Not here on purpose: FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION (Flex Consumption takes the runtime from
// functionAppConfig and rejects them), FUNCTIONS_CUSTOMHANDLER_PORT (set by
// the host), and the local-development alternatives listed in the test.
var appSettings = {
  // Host storage through the identity (no AzureWebJobsStorage connection
  // string), at the endpoints the account reports: __accountName would
  // build public-cloud host names.
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId

  // Telemetry, sent with Entra authentication (local auth is off).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

  // The identity DefaultAzureCredential / ManagedIdentityCredential use.
  AZURE_CLIENT_ID: identityClientId

  // The app's tables, through the identity.
  TABLES_ENDPOINT: storage.properties.primaryEndpoints.table

  // Service Bus for the triggers (connection "ServiceBusConnection") and the
  // handler's sender, through the identity.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespaceHost
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId

  // Microsoft Graph and Entra.
  GRAPH_BASE_URL: graphBaseUrl
  AZURE_AUTHORITY_HOST: authorityHost

  // Presence polling.
  PRESENCE_POLL_SCHEDULE: presencePollSchedule
  PRESENCE_STALE_AFTER: presenceStaleAfter
  PRESENCE_APP_CLIENT_ID: presenceAppClientId
  PRESENCE_APP_CLIENT_SECRET: storedSecrets.presenceAppClientSecret ? secretRef(keyVaultName, 'presence-app-client-secret') : ''
  PRESENCE_ACCOUNT1_UPN: presenceAccount1Upn
  PRESENCE_ACCOUNT1_PASSWORD: storedSecrets.presenceAccount1Password ? secretRef(keyVaultName, 'presence-account1-password') : ''
  PRESENCE_ACCOUNT2_UPN: presenceAccount2Upn
  PRESENCE_ACCOUNT2_PASSWORD: storedSecrets.presenceAccount2Password ? secretRef(keyVaultName, 'presence-account2-password') : ''
  PRESENCE_CONSENT_REDIRECT_URI: presenceConsentRedirectUri

  // Presence change notifications (SPEC section 14): Graph posts to the
  // app's own PresenceNotifications route, encrypted for the Key Vault
  // certificate (exposed to references as a secret of the same name,
  // PEM with the private key).
  PRESENCE_NOTIFICATIONS_URL: empty(presenceNotificationsCertificateName) ? '' : 'https://${app.properties.defaultHostName}/api/presence-notifications'
  PRESENCE_NOTIFICATIONS_CERTIFICATE: empty(presenceNotificationsCertificateName) ? '' : secretRef(keyVaultName, presenceNotificationsCertificateName)
  PRESENCE_RECONCILE_EVERY: presenceReconcileEvery

  // The API: tenant routes need an Entra token for this audience with one of
  // the route's app roles (infra/app-roles.json); every route is anonymous
  // at the host (function.json), the handler's check is the gate.
  API_AUTH: 'entra'
  API_AUDIENCE: apiAudience
  // The web page (/api/ui/) signs in with this SPA registration.
  UI_CLIENT_ID: uiClientId

  // Tenant secrets at rest (always stored: main.bicep requires the key).
  SECRETS_KEY: secretRef(keyVaultName, 'secrets-key')
  SECRETS_KEY_PREVIOUS: storedSecrets.secretsKeyPrevious ? secretRef(keyVaultName, 'secrets-key-previous') : ''

  // Tenant-chosen URLs (event subscriptions, ACS) must be public https
  // hosts in Azure; the handler refuses to start otherwise.
  ALLOW_PRIVATE_ENDPOINTS: 'false'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the app to deploy the 'api' service of azure.yaml to by this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(appSettings, queueSettings)
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
