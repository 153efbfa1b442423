package presence

import (
	"testing"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
)

func mainWithTestenv(m *testing.M) { testenv.Main(m) }

// backends runs fn against the in-memory tables and, unless -short,
// against Azurite.
func backends(t *testing.T, fn func(t *testing.T, tables store.Tables)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, store.NewMemoryTables()) })
	t.Run("azurite", func(t *testing.T) {
		if testing.Short() {
			t.Skip("Azurite tests run without -short")
		}
		fn(t, testenv.Tables(t))
	})
}
