// A valid file that uses the constructs infra/ relies on.
targetScope = 'resourceGroup'

@secure()
param secret string = ''

var queues = [
  {
    name: 'q'
    setting: 'Q'
  }
]

func ref(v string) string => '@Microsoft.KeyVault(VaultName=${v};SecretName=s)'

resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'st'
}

resource role 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for q in queues: if (!empty(secret)) {
    name: guid(st.id, q.name)
    scope: st
    properties: {
      principalId: ref(q.setting)
    }
  }
]

output settings object = toObject(queues, q => q.setting, q => q.name)
