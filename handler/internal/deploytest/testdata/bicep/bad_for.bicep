// A for-expression without its 'in'.
param names array

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for n names: {
  name: n
}]
