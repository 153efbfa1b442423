package main

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"switchboard/handler/aztable"
	"switchboard/handler/config"
	"switchboard/handler/store"
)

// openTables opens Table Storage: with a connection string (Azurite, local)
// or with the endpoint and the app's managed identity (Azure).
func openTables(ctx context.Context, cfg config.Config) (store.Tables, error) {
	if cfg.TablesConnectionString != "" {
		return aztable.Open(aztable.Options{ConnectionString: cfg.TablesConnectionString})
	}
	cred, err := azureCredential(cfg.AzureClientID)
	if err != nil {
		return nil, err
	}
	return aztable.Open(aztable.Options{Endpoint: cfg.TablesEndpoint, Credential: cred})
}

// azureCredential is the app's identity in Azure: the user-assigned managed
// identity named by clientID when given, otherwise the default chain
// (system-assigned identity, or a developer's az login).
func azureCredential(clientID string) (azcore.TokenCredential, error) {
	if clientID != "" {
		return azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	}
	return azidentity.NewDefaultAzureCredential(nil)
}
