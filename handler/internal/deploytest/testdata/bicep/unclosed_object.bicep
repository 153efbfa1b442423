// The object of appSettings is never closed.
param name string

var appSettings = {
  NAME: name
  OTHER: 'x'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: name
}
