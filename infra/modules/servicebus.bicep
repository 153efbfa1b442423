// Service Bus namespace with the app's queues. SAS (local) authentication is
// off: the Function App sends and receives with its managed identity.
param name string
param location string
param tags object = {}

@allowed([
  'Basic'
  'Standard'
])
param sku string = 'Standard'

@description('Queues to create: [{name, setting, lockDuration, maxDeliveryCount, defaultMessageTimeToLive}].')
param queues array

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for q in queues: {
    parent: namespace
    name: q.name
    properties: {
      lockDuration: q.lockDuration
      maxDeliveryCount: q.maxDeliveryCount
      defaultMessageTimeToLive: q.defaultMessageTimeToLive
      // An expired message goes to the dead-letter queue instead of vanishing.
      deadLetteringOnMessageExpiration: true
      enablePartitioning: false
      requiresSession: false
    }
  }
]

output name string = namespace.name
// The host name from the endpoint Azure reports (https://<host>:443/), so the
// namespace resolves in every cloud, not only the public one.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
