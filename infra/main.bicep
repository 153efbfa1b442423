// Switchboard on Azure: everything `azd up` creates, in one resource group.
// The Function App runs on the Flex Consumption plan with the Go custom
// handler and reaches Storage, Service Bus, Key Vault and Application
// Insights through one user-assigned managed identity: no account keys and
// no connection strings with secrets in the app settings.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique names of the resources.')
param environmentName string

@minLength(1)
@description('Azure region of every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create; default rg-<environment name>.')
param resourceGroupName string = ''

@minLength(1)
@description('Application (client) id of the multi-tenant app registration that reads presence (delegated through the presence accounts, or application permission).')
param presenceAppClientId string

@secure()
@description('Client secret of that app registration. Stored in Key Vault; leave empty to set it later.')
param presenceAppClientSecret string = ''

@description('UPN of presence account 1 (the guest account customers invite), e.g. presence1@contoso.onmicrosoft.com.')
param presenceAccount1Upn string = ''

@secure()
@description('Password of presence account 1. Stored in Key Vault.')
param presenceAccount1Password string = ''

@description('UPN of presence account 2, the fallback.')
param presenceAccount2Upn string = ''

@secure()
@description('Password of presence account 2. Stored in Key Vault.')
param presenceAccount2Password string = ''

@secure()
@minLength(43)
@description('Key that encrypts tenant secrets at rest: the base64 of 32 random bytes (`openssl rand -base64 32`; `azd env set SECRETS_KEY ...`). Stored in Key Vault.')
param secretsKey string

@secure()
@description('The key before secretsKey, while values sealed under it are re-encrypted (key rotation); empty otherwise. Stored in Key Vault.')
param secretsKeyPrevious string = ''

@secure()
@description('Connection string of the deployment\'s own Azure Communication Services resource, for Assistant tokens of tenants without their own ACS. Stored in Key Vault; empty: such tenants get 409 assistant-not-configured.')
param acsConnectionString string = ''

@description('Redirect URI put in the admin-consent URLs (one of the app registration\'s redirect URIs); empty: Entra uses the app\'s default.')
param presenceConsentRedirectUri string = ''

@description('Audience of the Entra tokens the API accepts (the Resource URL of the Power Automate connector); default api://<presenceAppClientId>.')
param apiAudience string = ''

@description('Client id of the SPA app registration the web page (/api/ui/) signs in with; empty: the page cannot sign in and says so.')
param uiClientId string = ''

@description('Microsoft Graph base URL (another value only for sovereign clouds).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('NCRONTAB schedule of the presence poll (six fields, UTC).')
param presencePollSchedule string = '*/30 * * * * *'

@description('Age after which a presence reading is never routed, e.g. 120s.')
param presenceStaleAfter string = '120s'

@description('Name of a certificate in the deployment\'s Key Vault (content type PEM, RSA 2048+) for presence change notifications; empty: presence is polled only. See README, "Presence notifications".')
param presenceNotificationsCertificateName string = ''

@description('How often agents covered by a presence subscription are read anyway (reconciliation), e.g. 5m.')
param presenceReconcileEvery string = '5m'

@allowed([
  'Basic'
  'Standard'
])
@description('Service Bus tier. Basic is enough for queues and scheduled messages; Standard adds topics and duplicate detection.')
param serviceBusSku string = 'Standard'

// Flex Consumption accepts 40 to 1000 (the platform refuses a lower bound).
@minValue(40)
@maxValue(1000)
@description('Upper bound of Flex Consumption instances (40 to 1000).')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// The Service Bus queues and the app setting that names each one. The
// Function App gets every `setting` = `name`, so a function.json that says
// "%OUTBOUND_QUEUE%" binds to the queue created here (checked by a test).
var serviceBusQueues = [
  {
    // Outbound tasks, each scheduled for its due time. A message that fails
    // maxDeliveryCount times is dead-lettered, never silently dropped; the
    // worker holds the lock while it assigns an agent.
    name: 'outbound-tasks'
    setting: 'OUTBOUND_QUEUE'
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P14D'
  }
  {
    // Presence poll shards fanned out by the timer. A shard older than a few
    // poll periods is worthless (the next tick polls again): short TTL, few
    // retries, expired ones kept in the dead-letter queue for diagnosis.
    name: 'presence-poll'
    setting: 'PRESENCE_QUEUE'
    lockDuration: 'PT1M'
    maxDeliveryCount: 3
    defaultMessageTimeToLive: 'PT5M'
  }
  {
    // Due times of the waiting lines (offer lapse, wait timeout, RONA and
    // after-call work ending), scheduled for their time. Every message is
    // idempotent; what a dead-lettered one left undone, housekeeping does
    // within a minute. A due time is at most 45 min plus 320 min away.
    name: 'distribution'
    setting: 'DISTRIBUTION_QUEUE'
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P1D'
  }
  {
    // Event deliveries to webhook subscriptions. The app schedules its own
    // retries (10 s to hourly, for 24 h) as new messages; a message that
    // fails maxDeliveryCount times (storage down) is dead-lettered. The lock
    // outlasts one invocation's delivery budget (60 s + a 10 s request).
    name: 'events'
    setting: 'EVENTS_QUEUE'
    lockDuration: 'PT2M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'P2D'
  }
  {
    // Interact sessions' recovery timers, each scheduled for the end of a
    // recovery time (5-60 s). A message is worthless after a few minutes
    // (housekeeping acts on late ones itself).
    name: 'interact'
    setting: 'INTERACT_QUEUE'
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    defaultMessageTimeToLive: 'PT1H'
  }
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    sku: serviceBusSku
    queues: serviceBusQueues
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    secrets: {
      'presence-app-client-secret': presenceAppClientSecret
      'presence-account1-password': presenceAccount1Password
      'presence-account2-password': presenceAccount2Password
      'secrets-key': secretsKey
      'secrets-key-previous': secretsKeyPrevious
      'acs-connection-string': acsConnectionString
    }
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // App settings hold Key Vault references and identity-based connections:
  // the roles must exist before the host resolves them.
  dependsOn: [
    roles
  ]
  params: {
    name: '${abbrs.webSitesFunctions}${resourceToken}'
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusNamespaceHost: serviceBus.outputs.fullyQualifiedNamespace
    queueSettings: toObject(serviceBusQueues, q => q.setting, q => q.name)
    keyVaultName: keyVault.outputs.name
    storedSecrets: {
      presenceAppClientSecret: !empty(presenceAppClientSecret)
      presenceAccount1Password: !empty(presenceAccount1Password)
      presenceAccount2Password: !empty(presenceAccount2Password)
      secretsKeyPrevious: !empty(secretsKeyPrevious)
      acsConnectionString: !empty(acsConnectionString)
    }
    presenceAppClientId: presenceAppClientId
    presenceAccount1Upn: presenceAccount1Upn
    presenceAccount2Upn: presenceAccount2Upn
    presenceConsentRedirectUri: presenceConsentRedirectUri
    apiAudience: !empty(apiAudience) ? apiAudience : 'api://${presenceAppClientId}'
    uiClientId: uiClientId
    graphBaseUrl: graphBaseUrl
    authorityHost: environment().authentication.loginEndpoint
    presencePollSchedule: presencePollSchedule
    presenceStaleAfter: presenceStaleAfter
    presenceNotificationsCertificateName: presenceNotificationsCertificateName
    presenceReconcileEvery: presenceReconcileEvery
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SWITCHBOARD_API_URL string = '${functionApp.outputs.url}/api'
output SWITCHBOARD_UI_URL string = '${functionApp.outputs.url}/api/ui/'
// The audience of the API's tokens: make connector (the postprovision hook)
// writes it into the Power Automate connector as its resource URI.
output API_AUDIENCE string = !empty(apiAudience) ? apiAudience : 'api://${presenceAppClientId}'
output PRESENCE_APP_CLIENT_ID string = presenceAppClientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
