package main

import (
	"context"
	"fmt"

	"switchboard/handler/secrets"
)

// wireSecrets opens the keyring of tenant secrets (SECRETS_KEY). Locally,
// without a key, it makes one for this run (logged): what it seals is gone
// with the process, as is make run's in-memory Azurite (the local runner
// sets one key for all the handler processes it starts). In Azure the key
// is required (config.Load).
func wireSecrets(ctx context.Context, a *app) error {
	key := a.cfg.SecretsKey
	if key == "" {
		a.log.Warn("SECRETS_KEY is not set: tenant secrets are sealed under a key made for this run only (local development)")
		key = secrets.GenerateKey()
	}
	k, err := secrets.New(key, a.cfg.SecretsKeyPrevious)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	a.secrets = k
	return nil
}
