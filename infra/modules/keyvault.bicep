// Key Vault for the deployment's secrets (the app registration's secret and
// the presence accounts' passwords). Access is by Azure RBAC only; the
// Function App reads them as Key Vault references with its managed identity.
// A secret is written only when a value was given (the Function App's
// setting is then a reference to it, otherwise empty).
param name string
param location string
param tags object = {}

@secure()
@description('Secret name to value; empty values are skipped.')
param secrets object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for s in items(secrets): if (!empty(s.value)) {
    parent: vault
    name: s.key
    properties: {
      value: s.value
      contentType: 'text/plain'
    }
  }
]

output name string = vault.name
