package store_test

import (
	"testing"

	"switchboard/handler/store"
	"switchboard/handler/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Table { return store.NewMemory() })
}
